package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/avon-ai/data-import-operator/internal/testsupport"
)

// Tenancy gives tests what a multi-tenant cluster has: the operator's per-CRD roles from
// config/rbac installed, aggregated into the built-in admin, edit and view ClusterRoles by
// the real kube-controller-manager (envtest runs no controller manager, so without it the
// aggregation labels would do nothing), and users bound to those built-in roles.
type Tenancy struct {
	env  *Env
	kcm  *exec.Cmd
	logs *bytes.Buffer
	dir  string
}

// StartTenancy applies every ClusterRole of config/rbac and starts kube-controller-manager
// with only its clusterrole-aggregation controller. It returns once the built-in "edit"
// role carries this project's rules. Call Stop when done.
func (e *Env) StartTenancy(ctx context.Context) (*Tenancy, error) {
	dir, err := os.MkdirTemp("", "tenancy-")
	if err != nil {
		return nil, err
	}
	t := &Tenancy{env: e, dir: dir, logs: &bytes.Buffer{}}
	if err := t.applyOperatorRoles(ctx); err != nil {
		t.Stop()
		return nil, err
	}
	kubeconfig, err := e.Kubeconfig(dir)
	if err != nil {
		t.Stop()
		return nil, err
	}
	t.kcm = exec.Command(filepath.Join(e.Assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--controllers=clusterrole-aggregation",
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
	)
	t.kcm.Stdout, t.kcm.Stderr = t.logs, t.logs
	if err := t.kcm.Start(); err != nil {
		t.Stop()
		return nil, fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	if err := t.waitForAggregation(ctx, "edit"); err != nil {
		t.Stop()
		return nil, fmt.Errorf("%w\nkube-controller-manager output:\n%s", err, t.logs.String())
	}
	return t, nil
}

// Stop ends kube-controller-manager and removes the temporary kubeconfig.
func (t *Tenancy) Stop() {
	if t.kcm != nil && t.kcm.Process != nil {
		_ = t.kcm.Process.Kill()
		_ = t.kcm.Wait()
	}
	_ = os.RemoveAll(t.dir)
}

// applyOperatorRoles creates (or replaces) every ClusterRole found in config/rbac.
func (t *Tenancy) applyOperatorRoles(ctx context.Context) error {
	root, err := testsupport.RepoRoot()
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "rbac", "*.yaml"))
	if err != nil {
		return err
	}
	c, err := client.New(t.env.Config, client.Options{Scheme: t.env.Scheme})
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if meta.Kind != "ClusterRole" {
				continue
			}
			var role rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict([]byte(doc), &role); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			err := c.Create(ctx, &role)
			if apierrors.IsAlreadyExists(err) {
				var cur rbacv1.ClusterRole
				if err := c.Get(ctx, client.ObjectKey{Name: role.Name}, &cur); err != nil {
					return err
				}
				role.ResourceVersion = cur.ResourceVersion
				err = c.Update(ctx, &role)
			}
			if err != nil {
				return fmt.Errorf("applying ClusterRole %s from %s: %w", role.Name, f, err)
			}
		}
	}
	return nil
}

// waitForAggregation waits until the built-in role holds a rule of this project's group.
func (t *Tenancy) waitForAggregation(ctx context.Context, builtin string) error {
	c, err := client.New(t.env.Config, client.Options{Scheme: t.env.Scheme})
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var role rbacv1.ClusterRole
		if err := c.Get(ctx, client.ObjectKey{Name: builtin}, &role); err != nil {
			return false, nil //nolint:nilerr // the apiserver may still be creating it
		}
		for _, r := range role.Rules {
			for _, g := range r.APIGroups {
				if g == "dataimport.avon.ai" {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("the built-in ClusterRole %q never gained the dataimport.avon.ai rules: %w", builtin, err)
	}
	return nil
}

// User binds user to the built-in ClusterRole (admin, edit or view) in namespace ns and
// returns a client and a rest.Config that act as that user, by impersonation: every
// request is authorized exactly as the user's would be.
func (t *Tenancy) User(ctx context.Context, ns, user, clusterRole string) (client.Client, *rest.Config, error) {
	admin, err := client.New(t.env.Config, client.Options{Scheme: t.env.Scheme})
	if err != nil {
		return nil, nil, err
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user + "-" + clusterRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := admin.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, nil, fmt.Errorf("binding %s to %s in %s: %w", user, clusterRole, ns, err)
	}
	cfg := rest.CopyConfig(t.env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: t.env.Scheme})
	if err != nil {
		return nil, nil, err
	}
	return c, cfg, nil
}

// UserKubeconfig writes a kubeconfig for the real kubectl that acts as user (bound with
// User first), and returns its path.
func (t *Tenancy) UserKubeconfig(dir, user string) (string, error) {
	u, err := t.env.env.ControlPlane.AddUser(envtest.User{Name: "admin-for-" + user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	// kubectl --as reads impersonation from flags; a kubeconfig carries it as "as".
	var kc map[string]any
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return "", err
	}
	users, ok := kc["users"].([]any)
	if !ok || len(users) == 0 {
		return "", errors.New("kubeconfig from envtest has no users")
	}
	for _, u := range users {
		entry, _ := u.(map[string]any)
		if inner, ok := entry["user"].(map[string]any); ok {
			inner["as"] = user
			inner["as-groups"] = []string{"system:authenticated"}
		}
	}
	out, err := yaml.Marshal(kc)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig-"+user)
	return path, os.WriteFile(path, out, 0o600)
}
