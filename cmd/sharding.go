package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// checkSharding refuses --shards with a store only one process may open: the SQLite
// file lives on one pod's volume, so SQLite stays the single-replica default.
func checkSharding(shards int, dsn string) error {
	if shards < 0 {
		return fmt.Errorf("--shards %d: want 0 (one leader runs every discovery) or more", shards)
	}
	if shards == 0 {
		return nil
	}
	scheme, _, _ := strings.Cut(strings.ToLower(dsn), "://")
	if scheme != "postgres" && scheme != "postgresql" {
		return fmt.Errorf("--shards %d needs the PostgreSQL store (--store=postgres://...): the SQLite store is a file one replica opens; "+
			"run a single replica without --shards, or move the store to PostgreSQL", shards)
	}
	return nil
}

// podIdentity is who this replica is among the shard holders, and the namespace its
// Leases live in: the pod's name and namespace from the downward API, or the host name
// and the service account's namespace.
func podIdentity() (name, namespace string, err error) {
	name, namespace = os.Getenv("POD_NAME"), os.Getenv("POD_NAMESPACE")
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return "", "", fmt.Errorf("sharding: no POD_NAME and no host name: %w", err)
		}
	}
	if namespace == "" {
		b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		if err != nil {
			return "", "", errors.New("sharding: set POD_NAMESPACE to the namespace of the shard Leases (the manager's own)")
		}
		namespace = strings.TrimSpace(string(b))
	}
	return name, namespace, nil
}

// receiverAdvertise is the address other replicas hand this replica the events of its
// sources at, published on its member Lease: --receiver-advertise-address, or the pod's
// IP (POD_IP from the downward API) with the port of --receiver-bind-address. Empty
// without sharding or without a receiver.
func receiverAdvertise(advertise, bind string, shards int, podIP string) (string, error) {
	if shards == 0 || bind == "" || bind == "0" {
		return "", nil
	}
	if advertise != "" {
		host, port, err := net.SplitHostPort(advertise)
		if err != nil || host == "" || port == "" || port == "0" {
			return "", fmt.Errorf("--receiver-advertise-address %q: want host:port", advertise)
		}
		return advertise, nil
	}
	_, port, err := net.SplitHostPort(bind)
	if err != nil || port == "" || port == "0" {
		return "", fmt.Errorf("--receiver-bind-address %q: want [host]:port with a fixed port, so other replicas can reach it", bind)
	}
	if podIP == "" {
		return "", errors.New("--shards with the webhook receiver needs POD_IP (status.podIP from the downward API) or --receiver-advertise-address: " +
			"a replica hands the events of sources it does not serve to the replica that does, at the address that one publishes")
	}
	return net.JoinHostPort(podIP, port), nil
}
