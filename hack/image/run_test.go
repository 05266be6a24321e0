package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the test computes the Europe/Paris window the manager must report

	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/testsupport"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
)

// saDir is where a pod finds its ServiceAccount token, CA and namespace (in-cluster config).
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// TestImageRunsAsDeployed unpacks the image with umoci and runs it with runc the way
// config/default's Deployment runs it: its command and args, UID/GID 65532 with no
// capabilities, no privilege escalation and the RuntimeDefault seccomp profile (Docker's), a
// read-only root file system (all checked in the running process's /proc), the store volume
// and a 1Gi /tmp, the ServiceAccount's token mounted where client-go's in-cluster config
// reads it, and the host's network (the test's API server and MinIO listen on 127.0.0.1).
// The manager gets exactly the RBAC of config/rbac, as rendered by config/default. Then
// the probes answer, /metrics answers a reader bound by config/rbac's metrics-reader role and
// no one else, and an S3Source ingests two sample files from MinIO, under an IngestionQuota
// whose Europe/Paris time zone must resolve inside the image.
func TestImageRunsAsDeployed(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	root := repoRoot(t)
	runc, err := testsupport.HackScript("runc.sh")
	if err != nil {
		t.Fatalf("installing runc and umoci: %v", err)
	}
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		t.Fatal(err)
	}

	// The image, the API server and MinIO, in parallel.
	var (
		img *Result
		env *kube.Env
		s3  *minio.Server
	)
	g := errgroup.Group{}
	g.Go(func() (err error) { img, err = build(); return err })
	g.Go(func() (err error) { env, err = kube.Start(); return err })
	g.Go(func() (err error) { s3, err = minio.StartServer(minio.Options{}); return err })
	err = g.Wait()
	if env != nil {
		t.Cleanup(func() { _ = env.Stop() })
	}
	if s3 != nil {
		t.Cleanup(s3.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image, API server and MinIO ready after %s", time.Since(start).Round(time.Millisecond))
	admin, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}

	// What config/default installs besides the CRDs (already installed by envtest).
	objs := renderDefault(t, filepath.Join(env.Assets, "kubectl"), root)
	dep := deploymentOf(t, objs)
	pod := dep.Spec.Template.Spec
	ns := dep.Namespace
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
			if err := admin.Create(ctx, o); err != nil {
				t.Fatalf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	token := serviceAccountToken(ctx, t, env, ns, pod.ServiceAccountName)
	assertNotAdmin(ctx, t, env, token)

	// The bundle: umoci's runtime config from the image config, then the pod's settings.
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.CommandContext(ctx, umoci, "unpack", "--image", img.Layout+":"+tagOf(testRef), bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	probePort, metricsPort := freePort(t), freePort(t)
	spec := readSpec(t, filepath.Join(bundle, "config.json"))
	configureAsPod(t, spec, pod, podVolumes{
		store:     hostDir(t, dir, "store", 0o770, 65532),
		sa:        serviceAccountDir(t, dir, token, env.Config.CAData, ns),
		apiServer: env.Config.Host,
		ports:     map[string]int{"health-probe-bind-address": probePort, "metrics-bind-address": metricsPort},
		extraArgs: []string{"--allowed-endpoints=" + s3.Endpoint},
	})
	writeSpec(t, filepath.Join(bundle, "config.json"), spec)

	ctr := startContainer(t, runc, dir, bundle)
	health := "http://127.0.0.1:" + strconv.Itoa(probePort)
	for _, p := range []string{"/healthz", "/readyz"} {
		if err := waitHTTP(ctx, ctr, health+p); err != nil {
			t.Fatalf("%s: %v\nmanager log:\n%s", p, err, ctr.log())
		}
	}
	t.Logf("container running, /healthz and /readyz answer, %s after the start", time.Since(start).Round(time.Millisecond))

	checkProcess(t, ctr)
	checkMetricsAuth(ctx, t, env, admin, metricsPort, ctr)

	// The happy path: a team's bucket with sample files, read with a read-only key.
	happyPath(ctx, t, root, admin, s3, ctr)

	// SIGTERM (what the kubelet sends) stops the manager cleanly.
	if err := ctr.stop(30 * time.Second); err != nil {
		t.Errorf("stopping the manager with SIGTERM: %v\nmanager log:\n%s", err, ctr.log())
	}
	t.Logf("TestImageRunsAsDeployed took %s", time.Since(start).Round(time.Millisecond))
}

// checkProcess reads the manager's process from the host's /proc: the security context was
// applied, not just written into the runtime config.
func checkProcess(t *testing.T, c *container) {
	t.Helper()
	out, err := exec.Command(c.runc, "--root", c.state, "state", c.id).Output()
	if err != nil {
		t.Fatalf("runc state: %v", err)
	}
	var state struct{ Pid int }
	if err := json.Unmarshal(out, &state); err != nil || state.Pid == 0 {
		t.Fatalf("runc state %s: %v", out, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", state.Pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	for k, want := range map[string]string{
		"Name": "manager", "Uid": "65532 65532 65532 65532", "Gid": "65532 65532 65532 65532", "Groups": "65532",
		"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapBnd": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2", // 2: filter mode
	} {
		if fields[k] != want {
			t.Errorf("the manager's %s is %q, want %q", k, fields[k], want)
		}
	}
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mounts", state.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var rootOptions []string
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[1] == "/" {
			rootOptions = strings.Split(f[3], ",") // the last mount of / is the one seen
		}
	}
	if !slices.Contains(rootOptions, "ro") {
		t.Errorf("the root file system is mounted %v, want ro", rootOptions)
	}
}

// checkMetricsAuth: --metrics-secure serves /metrics over HTTPS to callers allowed to get
// it (the manager's TokenReview and SubjectAccessReview, config/rbac/metrics_auth_role),
// e.g. Prometheus's ServiceAccount bound to config/rbac's metrics-reader role; anonymous
// callers get 401, other ServiceAccounts 403.
func checkMetricsAuth(ctx context.Context, t *testing.T, env *kube.Env, admin client.Client, port int, ctr *container) {
	t.Helper()
	const ns, sa, unbound = "monitoring", "prometheus", "unbound"
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: unbound}},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-data-import-metrics-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "data-import-metrics-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
		},
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	token := serviceAccountToken(ctx, t, env, ns, sa)
	// The manager's certificate is self-signed (no cert-manager here); authentication is what
	// is tested.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed
	get := func(bearer string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(port)+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	var code int
	var body string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		code, body, err = get(token)
		return err == nil && code == http.StatusOK, nil
	})
	if err != nil || !strings.Contains(body, "controller_runtime_") {
		t.Fatalf("GET /metrics as %s/%s: %d %v\n%.500s\nmanager log:\n%s", ns, sa, code, err, body, ctr.log())
	}
	if code, _, err := get(""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("GET /metrics anonymously: %d %v, want 401", code, err)
	}
	if code, _, err := get(serviceAccountToken(ctx, t, env, ns, unbound)); err != nil || code != http.StatusForbidden {
		t.Errorf("GET /metrics as a ServiceAccount without the metrics-reader role: %d %v, want 403", code, err)
	}
}

// renderDefault runs `kubectl kustomize config/default`.
func renderDefault(t *testing.T, kubectl, root string) []*unstructured.Unstructured {
	t.Helper()
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(root, "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatal(err)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

func deploymentOf(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
				t.Fatal(err)
			}
			if len(d.Spec.Template.Spec.Containers) != 1 {
				t.Fatalf("the Deployment has %d containers, want 1", len(d.Spec.Template.Spec.Containers))
			}
			return &d
		}
	}
	t.Fatal("config/default renders no Deployment")
	return nil
}

// serviceAccountToken issues a token for the ServiceAccount with the TokenRequest API, as
// the kubelet does for a pod's projected volume.
func serviceAccountToken(ctx context.Context, t *testing.T, env *kube.Env, ns, name string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	expiry := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token for ServiceAccount %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// assertNotAdmin: the token is the ServiceAccount's, bound by config/rbac only; it may not
// list Secrets (config/rbac lets the manager get them, never list).
func assertNotAdmin(ctx context.Context, t *testing.T, env *kube.Env, token string) {
	t.Helper()
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = token
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets); !apierrors.IsForbidden(err) {
		t.Fatalf("the manager's ServiceAccount lists Secrets (err %v): it must hold only config/rbac's rights", err)
	}
}

// hostDir creates a directory for a volume, owned by uid (the pod's fsGroup does that).
func hostDir(t *testing.T, parent, name string, mode os.FileMode, uid int) string {
	t.Helper()
	d := filepath.Join(parent, name)
	if err := os.Mkdir(d, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, uid, uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	return d
}

// serviceAccountDir holds what the kubelet mounts at saDir: token, ca.crt and namespace.
func serviceAccountDir(t *testing.T, parent, token string, ca []byte, ns string) string {
	t.Helper()
	d := hostDir(t, parent, "serviceaccount", 0o755, 0)
	for name, data := range map[string][]byte{"token": []byte(token), "ca.crt": ca, "namespace": []byte(ns)} {
		if err := os.WriteFile(filepath.Join(d, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

type podVolumes struct {
	store     string
	sa        string
	apiServer string
	// ports replaces the port of these flags' addresses: with the host's network, the
	// Deployment's fixed ports could be taken on this machine.
	ports     map[string]int
	extraArgs []string
}

// configureAsPod turns umoci's runtime config into the pod's container: it checks what
// comes from the image (user, entrypoint) against the pod spec and sets what the pod adds.
func configureAsPod(t *testing.T, spec map[string]any, pod corev1.PodSpec, v podVolumes) {
	t.Helper()
	c := pod.Containers[0]
	sc, psc := c.SecurityContext, pod.SecurityContext
	process := spec["process"].(map[string]any)
	user := process["user"].(map[string]any)
	if uid, gid := user["uid"], user["gid"]; fmt.Sprint(uid) != fmt.Sprint(*psc.RunAsUser) || fmt.Sprint(gid) != fmt.Sprint(*psc.RunAsGroup) {
		t.Errorf("the image runs as %v:%v, the pod as %d:%d", uid, gid, *psc.RunAsUser, *psc.RunAsGroup)
	}
	if fmt.Sprint(user["uid"]) == "0" || !*psc.RunAsNonRoot {
		t.Error("runAsNonRoot: the image's user must not be root")
	}
	user["additionalGids"] = []int64{*psc.FSGroup}
	entrypoint := fmt.Sprint(process["args"])
	if entrypoint != fmt.Sprint(c.Command) {
		t.Errorf("the image's entrypoint is %s, the Deployment's command %v", entrypoint, c.Command)
	}
	args := slices.Clone(c.Command)
	for _, a := range c.Args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if p, ok := v.ports[name]; ok {
			a = fmt.Sprintf("--%s=:%d", name, p)
		}
		args = append(args, a)
	}
	process["args"] = append(args, v.extraArgs...)
	process["terminal"] = false
	process["cwd"] = "/"
	u, err := url.Parse(v.apiServer)
	if err != nil {
		t.Fatal(err)
	}
	// What the kubelet sets: the API server's service address, GOMEMLIMIT from the limit.
	env := []string{"KUBERNETES_SERVICE_HOST=" + u.Hostname(), "KUBERNETES_SERVICE_PORT=" + u.Port(), "HOME=/"}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
			env = append(env, fmt.Sprintf("%s=%d", e.Name, c.Resources.Limits.Memory().Value()))
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		default:
			t.Fatalf("env %s: the test does not know its source", e.Name)
		}
	}
	process["env"] = env
	if !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("the Deployment's securityContext changed (%+v): update the test", sc)
	}
	spec["root"].(map[string]any)["readonly"] = true
	process["noNewPrivileges"] = true
	process["capabilities"] = map[string]any{"bounding": []string{}, "effective": []string{}, "inheritable": []string{}, "permitted": []string{}, "ambient": []string{}}

	// The pod's volumes: the store (a PVC) bound to a host directory, tmp (an emptyDir with a
	// sizeLimit) as a tmpfs of that size, and the projected ServiceAccount token.
	mounts := spec["mounts"].([]any)
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(pod.Volumes, func(vol corev1.Volume) bool { return vol.Name == m.Name })
		if i < 0 {
			t.Fatalf("volumeMount %s has no volume", m.Name)
		}
		vol := pod.Volumes[i]
		switch {
		case vol.PersistentVolumeClaim != nil:
			mounts = append(mounts, map[string]any{"destination": m.MountPath, "type": "bind", "source": v.store, "options": []string{"rbind", "rw"}})
		case vol.EmptyDir != nil && vol.EmptyDir.SizeLimit != nil:
			mounts = append(mounts, map[string]any{"destination": m.MountPath, "type": "tmpfs", "source": "tmpfs",
				"options": []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(vol.EmptyDir.SizeLimit.Value(), 10)}})
		default:
			t.Fatalf("volume %s: the test does not know its kind", vol.Name)
		}
	}
	mounts = append(mounts, map[string]any{"destination": saDir, "type": "bind", "source": v.sa, "options": []string{"rbind", "ro"}})
	spec["mounts"] = mounts

	// The host's network: no network namespace.
	linux := spec["linux"].(map[string]any)
	var namespaces []any
	for _, n := range linux["namespaces"].([]any) {
		if n.(map[string]any)["type"] != "network" {
			namespaces = append(namespaces, n)
		}
	}
	linux["namespaces"] = namespaces

	// seccompProfile RuntimeDefault: the container runtime's default profile, here Docker's
	// (containerd's and CRI-O's derive from it), for the capabilities set above.
	profile := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		profile = sc.SeccompProfile
	}
	if profile == nil || profile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Fatalf("the Deployment's seccompProfile is %+v, the test knows RuntimeDefault", profile)
	}
	linux["seccomp"] = runtimeDefaultSeccomp(t, spec)
}

// runtimeDefaultSeccomp returns Docker's default seccomp profile for the runtime config spec.
func runtimeDefaultSeccomp(t *testing.T, spec map[string]any) map[string]any {
	t.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	var rs specs.Spec
	if err := json.Unmarshal(data, &rs); err != nil {
		t.Fatalf("the runtime config: %v", err)
	}
	profile, err := seccomp.GetDefaultProfile(&rs)
	if err != nil {
		t.Fatalf("the default seccomp profile: %v", err)
	}
	if data, err = json.Marshal(profile); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func readSpec(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return spec
}

func writeSpec(t *testing.T, path string, spec map[string]any) {
	t.Helper()
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// container is a runc container run in the foreground by the test.
type container struct {
	runc, state, id, logPath string
	cmd                      *exec.Cmd
	exited                   chan struct{}
	err                      error
}

// startContainer runs the bundle with a unique id and a private runc state directory, and
// always deletes it when the test ends.
func startContainer(t *testing.T, runc, dir, bundle string) *container {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	c := &container{runc: runc, state: filepath.Join(dir, "runc-state"), id: "data-import-image-test-" + hex.EncodeToString(b),
		logPath: filepath.Join(dir, "manager.log"), exited: make(chan struct{})}
	logFile, err := os.Create(c.logPath)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command(runc, "--root", c.state, "run", "--bundle", bundle, c.id)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	if err := c.cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("runc run: %v", err)
	}
	go func() {
		c.err = c.cmd.Wait()
		_ = logFile.Close()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = exec.Command(runc, "--root", c.state, "kill", c.id, "KILL").Run()
			select {
			case <-c.exited:
			case <-time.After(10 * time.Second):
				_ = c.cmd.Process.Kill()
			}
		}
		if out, err := exec.Command(runc, "--root", c.state, "delete", "--force", c.id).CombinedOutput(); err != nil && !strings.Contains(string(out), "does not exist") {
			t.Errorf("runc delete --force %s: %v\n%s", c.id, err, out)
		}
	})
	return c
}

func (c *container) log() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// stop sends SIGTERM and waits for a clean exit.
func (c *container) stop(grace time.Duration) error {
	if out, err := exec.Command(c.runc, "--root", c.state, "kill", c.id, "TERM").CombinedOutput(); err != nil {
		return fmt.Errorf("runc kill: %w: %s", err, out)
	}
	select {
	case <-c.exited:
		return c.err
	case <-time.After(grace):
		return fmt.Errorf("still running %s after SIGTERM", grace)
	}
}

func waitHTTP(ctx context.Context, c *container, u string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case <-c.exited:
			return false, fmt.Errorf("the container exited: %w", c.err)
		default:
		}
		resp, err := hc.Get(u)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// happyPath: a namespace with a read-only key in a Secret, a Europe/Paris quota and an
// S3Source on a MinIO bucket holding two sample files; both get ingested.
func happyPath(ctx context.Context, t *testing.T, root string, admin client.Client, s3 *minio.Server, ctr *container) {
	t.Helper()
	const ns, bucket, prefix = "team-image", "conversations", "exports/"
	samples := []string{"conv-2025-01-15-001.json", "conv-2025-01-15-batch.jsonl"}
	if err := s3.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		data, err := os.ReadFile(filepath.Join(root, "config", "samples", "data", "initial", s))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s3.Put(bucket, prefix+s, data); err != nil {
			t.Fatal(err)
		}
	}
	key, secret, err := s3.CreateReadOnlyUser(bucket, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "s3-credentials"},
			StringData: map[string]string{"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}},
		&v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}, Spec: v1.IngestionQuotaSpec{TimeZone: "Europe/Paris"}},
		&v1.S3Source{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "exports"}, Spec: v1.S3SourceSpec{
			Bucket: bucket, Prefix: prefix, Region: minio.Region, Endpoint: s3.Endpoint, ForcePathStyle: true,
			Credentials: &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "s3-credentials"}},
		}},
	} {
		if err := admin.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}

	// The quota's window is the day in Paris and ends at the next Paris midnight: the zone
	// resolved inside the image, which has no /usr/share/zoneinfo.
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	var q v1.IngestionQuota
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &q); err != nil {
			return false, err
		}
		if stalled := meta.FindStatusCondition(q.Status.Conditions, "Stalled"); stalled != nil && stalled.Status == metav1.ConditionTrue {
			return false, fmt.Errorf("stalled: %s: %s", stalled.Reason, stalled.Message)
		}
		return meta.IsStatusConditionTrue(q.Status.Conditions, "Ready") && q.Status.ResetsAt != nil, nil
	})
	if err != nil {
		t.Fatalf("the IngestionQuota did not become Ready: %v\nstatus: %+v\nmanager log:\n%s", err, q.Status, ctr.log())
	}
	day, err := time.ParseInLocation(time.DateOnly, q.Status.Window, paris)
	if err != nil {
		t.Fatalf("quota window %q: %v", q.Status.Window, err)
	}
	midnight := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, paris)
	if now := time.Now(); now.Before(day) || now.After(midnight.Add(time.Minute)) || !q.Status.ResetsAt.Time.Equal(midnight) {
		t.Errorf("quota window %s resetting at %s at %s, want the Paris day of now, resetting at the next Paris midnight",
			q.Status.Window, q.Status.ResetsAt.Time, now)
	}

	var src v1.S3Source
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "exports"}, &src); err != nil {
			return false, err
		}
		if stalled := meta.FindStatusCondition(src.Status.Conditions, "Stalled"); stalled != nil && stalled.Status == metav1.ConditionTrue {
			return false, fmt.Errorf("stalled: %s: %s", stalled.Reason, stalled.Message)
		}
		return meta.IsStatusConditionTrue(src.Status.Conditions, "Ready") && src.Status.Files != nil &&
			src.Status.Files.Ingested == int64(len(samples)), nil
	})
	if err != nil {
		t.Fatalf("the S3Source did not become Ready with %d files ingested: %v\nstatus: %+v\nmanager log:\n%s", len(samples), err, src.Status, ctr.log())
	}
	if src.Status.ConversationsIngested == 0 {
		t.Errorf("the S3Source ingested %d files but no conversation: %+v", src.Status.Files.Ingested, src.Status)
	}
}
