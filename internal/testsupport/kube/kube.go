// Package kube starts a real kube-apiserver and etcd (envtest) with this project's CRDs.
package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	dataimportv1alpha1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Scheme *runtime.Scheme
	// Assets is the directory holding kube-apiserver, etcd and kubectl.
	Assets string
	env    *envtest.Environment
}

// Start builds the envtest binaries if needed (hack/envtest-assets.sh honours
// KUBEBUILDER_ASSETS), starts them and installs the CRDs from config/crd/bases.
func Start() (*Env, error) {
	assets, err := testsupport.HackScript("envtest-assets.sh")
	if err != nil {
		return nil, err
	}
	root, err := testsupport.RepoRoot()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := dataimportv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	// The service-account issuer's discovery document names its JWKS at the advertised
	// address (a TEST-NET address under envtest); name the loopback address the API server
	// listens on instead, so an OpenID relying party on this machine (MinIO's STS in the
	// tests) can fetch the keys. That needs the port before start.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	apiserver := env.ControlPlane.GetAPIServer()
	apiserver.SecureServing.Address, apiserver.SecureServing.Port = "127.0.0.1", port
	apiserver.Configure().Set("service-account-jwks-uri", "https://127.0.0.1:"+port+"/openid/v1/jwks")
	// envtest prefers KUBEBUILDER_ASSETS over BinaryAssetsDirectory; make them agree.
	if err := os.Setenv("KUBEBUILDER_ASSETS", assets); err != nil {
		return nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest from %s: %w", assets, err)
	}
	return &Env{Config: cfg, Scheme: scheme, Assets: assets, env: env}, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port for the API server: %w", err)
	}
	defer func() { _ = l.Close() }()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// Issuer is the URL of the API server's service-account token issuer (its OpenID
// discovery document is at Issuer + ".well-known/openid-configuration").
func (e *Env) Issuer() string { return strings.TrimSuffix(e.Config.Host, "/") + "/" }

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Kubeconfig writes a kubeconfig for the control plane into dir and returns its path,
// so tests and the demo can run the real kubectl against it.
func (e *Env) Kubeconfig(dir string) (string, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// Client returns a client with the control plane's admin rights.
func (e *Env) Client() (client.Client, error) {
	return client.New(e.Config, client.Options{Scheme: e.Scheme})
}

// ServeIssuerDiscoveryAnonymously lets anyone read the service-account issuer's OpenID
// discovery document and keys (what a cloud's STS fetches to verify ServiceAccount tokens):
// it binds system:service-account-issuer-discovery to system:unauthenticated, as clusters
// that federate their tokens do, and waits until an anonymous GET succeeds.
func (e *Env) ServeIssuerDiscoveryAnonymously(ctx context.Context) error {
	c, err := e.Client()
	if err != nil {
		return err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "service-account-issuer-discovery-anonymous"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:unauthenticated"}},
	}
	if err := c.Create(ctx, crb); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding issuer discovery to anonymous users: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.Config.CAData) {
		return errors.New("the API server's CA is not PEM")
	}
	anon := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, path := range []string{".well-known/openid-configuration", "openid/v1/jwks"} {
			resp, err := anon.Get(e.Issuer() + path)
			if err != nil {
				return false, nil //nolint:nilerr // retried until the deadline
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("anonymous issuer discovery at %s: %w", e.Issuer(), err)
	}
	return nil
}
