// Package kube starts a real kube-apiserver and etcd (envtest) with this project's CRDs.
package kube

import (
	"fmt"
	"os"
	"path/filepath"

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
