package controllers_test

import (
	"context"
	"sync"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
)

// The tenancy harness starts on first use (kube-controller-manager aggregates this
// project's roles into the built-in ones) and stops with the suite.
var (
	tenancyOnce sync.Once
	tenancy     *kube.Tenancy
	tenancyErr  error
)

// asTenant returns a client that acts as user, a user bound to the built-in "edit"
// ClusterRole in namespace ns only: what a customer of the platform has.
func asTenant(t *testing.T, ns, user string) client.Client {
	t.Helper()
	tenancyOnce.Do(func() { tenancy, tenancyErr = env.StartTenancy(context.Background()) })
	if tenancyErr != nil {
		t.Fatalf("starting the tenancy harness: %v", tenancyErr)
	}
	c, _, err := tenancy.User(context.Background(), ns, user, "edit")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func stopTenancy() {
	if tenancy != nil {
		tenancy.Stop()
	}
}
