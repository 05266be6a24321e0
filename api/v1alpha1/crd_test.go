package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/avon-ai/data-import-operator/api/v1alpha1"
	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
)

var (
	env *kube.Env
	k8s client.Client
)

func TestMain(m *testing.M) {
	var err error
	env, err = kube.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := apiextensionsv1.AddToScheme(env.Scheme); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s, err = client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

var seq int

func newName(prefix string) string {
	seq++
	return fmt.Sprintf("%s-%d", prefix, seq)
}

func TestS3SourceDefaults(t *testing.T) {
	ctx := context.Background()
	src := &v1.S3Source{
		ObjectMeta: metav1.ObjectMeta{Name: newName("defaults"), Namespace: "default"},
		Spec: v1.S3SourceSpec{
			Bucket:      "my-bucket",
			Credentials: &v1.Credentials{AssumeRole: &v1.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/avon"}},
		},
	}
	if err := k8s.Create(ctx, src); err != nil {
		t.Fatalf("create: %v", err)
	}
	got := &v1.S3Source{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(src), got); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		field     string
		got, want any
	}{
		{"region", got.Spec.Region, "us-east-1"},
		{"interval", got.Spec.Interval.Duration, time.Hour},
		{"timeout", got.Spec.Timeout.Duration, 5 * time.Minute},
		{"disabled", got.Spec.Disabled, false},
		{"quotaRef", got.Spec.QuotaRef, "default"},
		{"onInvalidRecord", got.Spec.OnInvalidRecord, v1.SkipFile},
		{"credentials.provider", got.Spec.Credentials.Provider, v1.CredentialsDefault},
		{"credentials.assumeRole.sessionName", got.Spec.Credentials.AssumeRole.SessionName, "data-import-operator"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s defaulted to %v, want %v", c.field, c.got, c.want)
		}
	}
}

func TestIngestionQuotaDefaults(t *testing.T) {
	ctx := context.Background()
	q := &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Name: newName("defaults"), Namespace: "default"}}
	if err := k8s.Create(ctx, q); err != nil {
		t.Fatalf("create: %v", err)
	}
	got := &v1.IngestionQuota{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(q), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.DailyLimit.Value() != 500_000_000 {
		t.Errorf("dailyLimit defaulted to %s, want 500M (500,000,000 bytes)", got.Spec.DailyLimit.String())
	}
	if got.Spec.MaxFileSize.Value() != 50_000_000 {
		t.Errorf("maxFileSize defaulted to %s, want 50M", got.Spec.MaxFileSize.String())
	}
	if got.Spec.RefreshCooldown.Duration != time.Minute {
		t.Errorf("refreshCooldown defaulted to %v, want 60s", got.Spec.RefreshCooldown.Duration)
	}
	if got.Spec.TimeZone != "UTC" {
		t.Errorf("timeZone defaulted to %q, want UTC", got.Spec.TimeZone)
	}
}

func validSource() v1.S3SourceSpec {
	return v1.S3SourceSpec{Bucket: "my-bucket", Prefix: "conversations/"}
}

func TestS3SourceValidation(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*v1.S3SourceSpec)
		wantErr string // "" means accepted
	}{
		{"valid minimal", func(*v1.S3SourceSpec) {}, ""},
		{"valid with secret and assume role", func(s *v1.S3SourceSpec) {
			s.Endpoint = "https://minio.example.com:9000"
			s.ForcePathStyle = true
			s.CASecretRef = &v1.LocalObjectReference{Name: "ca"}
			s.Credentials = &v1.Credentials{
				Provider:   v1.CredentialsSecret,
				SecretRef:  &v1.LocalObjectReference{Name: "keys"},
				AssumeRole: &v1.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/avon", ExternalID: "ext-1"},
			}
		}, ""},
		{"valid dotted bucket", func(s *v1.S3SourceSpec) { s.Bucket = "logs.example-1" }, ""},
		{"uppercase bucket", func(s *v1.S3SourceSpec) { s.Bucket = "My-Bucket" }, "spec.bucket"},
		{"bucket too short", func(s *v1.S3SourceSpec) { s.Bucket = "ab" }, "spec.bucket"},
		{"bucket starting with hyphen", func(s *v1.S3SourceSpec) { s.Bucket = "-bucket" }, "spec.bucket"},
		{"bucket with adjacent periods", func(s *v1.S3SourceSpec) { s.Bucket = "my..bucket" }, "bucket must not contain two adjacent periods"},
		{"bucket as IP address", func(s *v1.S3SourceSpec) { s.Bucket = "192.168.5.4" }, "bucket must not be formatted as an IP address"},
		{"bucket with reserved prefix", func(s *v1.S3SourceSpec) { s.Bucket = "xn--bucket" }, "bucket must not start with the reserved prefixes"},
		{"bucket with reserved suffix", func(s *v1.S3SourceSpec) { s.Bucket = "bucket-s3alias" }, "bucket must not end with the reserved suffixes"},
		{"prefix with leading slash", func(s *v1.S3SourceSpec) { s.Prefix = "/conversations/" }, "prefix must not start with '/'"},
		{"interval below minimum", func(s *v1.S3SourceSpec) { s.Interval = &metav1.Duration{Duration: 30 * time.Second} }, "interval must be at least 1m"},
		{"timeout zero-ish", func(s *v1.S3SourceSpec) { s.Timeout = &metav1.Duration{Duration: 500 * time.Millisecond} }, "timeout must be between 1s and 1h"},
		{"two credential modes", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsDefault, SecretRef: &v1.LocalObjectReference{Name: "keys"}}
		}, "choose one credentials mode"},
		{"secret mode without secret", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsSecret}
		}, "secretRef is required when provider is Secret"},
		{"unknown credentials provider", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: "Vault"}
		}, "spec.credentials.provider"},
		{"bad role ARN", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{AssumeRole: &v1.AssumeRole{RoleARN: "role/avon"}}
		}, "spec.credentials.assumeRole.roleARN"},
		{"valid service account", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: "s3-reader"}
		}, ""},
		{"valid default with assume role, no external ID", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsDefault, AssumeRole: &v1.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/avon"}}
		}, ""},
		{"service account mode without a name", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsServiceAccount}
		}, "serviceAccountName is required when provider is ServiceAccount"},
		{"service account name with provider Default", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsDefault, ServiceAccountName: "s3-reader"}
		}, "serviceAccountName is required when provider is ServiceAccount and not allowed otherwise"},
		{"service account name with provider Secret", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsSecret, SecretRef: &v1.LocalObjectReference{Name: "keys"}, ServiceAccountName: "s3-reader"}
		}, "choose one credentials mode"},
		{"service account with a secret", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: "s3-reader", SecretRef: &v1.LocalObjectReference{Name: "keys"}}
		}, "secretRef is required when provider is Secret and not allowed otherwise"},
		{"service account with assume role", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: "s3-reader",
				AssumeRole: &v1.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/avon"}}
		}, "assumeRole is not allowed with provider ServiceAccount"},
		{"malformed service account name", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsServiceAccount, ServiceAccountName: "S3 Reader"}
		}, "spec.credentials.serviceAccountName"},
		{"tenant-chosen external ID with provider Default", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{Provider: v1.CredentialsDefault,
				AssumeRole: &v1.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/avon", ExternalID: "chosen-by-tenant"}}
		}, "assumeRole.externalID is not allowed with provider Default: the operator generates the external ID"},
		{"tenant-chosen external ID with the provider defaulted", func(s *v1.S3SourceSpec) {
			s.Credentials = &v1.Credentials{AssumeRole: &v1.AssumeRole{RoleARN: "arn:aws:iam::123456789012:role/avon", ExternalID: "chosen-by-tenant"}}
		}, "assumeRole.externalID is not allowed with provider Default"},
		{"CA bundle without endpoint", func(s *v1.S3SourceSpec) { s.CASecretRef = &v1.LocalObjectReference{Name: "ca"} }, "caSecretRef needs endpoint"},
		{"endpoint without scheme", func(s *v1.S3SourceSpec) { s.Endpoint = "minio:9000" }, "spec.endpoint"},
		{"unknown invalid-record policy", func(s *v1.S3SourceSpec) { s.OnInvalidRecord = "Ignore" }, "spec.onInvalidRecord"},
		{"valid validators", func(s *v1.S3SourceSpec) {
			s.Validators = []v1.Validator{{Type: v1.ValidatorEmail, Action: v1.ValidatorReject}, {Type: v1.ValidatorPhoneNumber, Action: v1.ValidatorRedact, Regions: []string{"US", "DE"}},
				{Type: v1.ValidatorPaymentCard, Action: v1.ValidatorFlag}, {Name: "employee-id", Type: v1.ValidatorRegex, Pattern: `\bEMP-[0-9]{6}\b`},
				{Name: "ticket", Type: v1.ValidatorRegex, Pattern: `T-[0-9]+`}}
		}, ""},
		{"validator regex without pattern", func(s *v1.S3SourceSpec) { s.Validators = []v1.Validator{{Type: v1.ValidatorRegex}} }, "pattern is required for type Regex"},
		{"validator pattern on email", func(s *v1.S3SourceSpec) { s.Validators = []v1.Validator{{Type: v1.ValidatorEmail, Pattern: "x"}} }, "pattern is required for type Regex and not allowed"},
		{"validator invalid regexp", func(s *v1.S3SourceSpec) { s.Validators = []v1.Validator{{Type: v1.ValidatorRegex, Pattern: "(a"}} }, "missing closing )"},
		{"validator pattern matching empty", func(s *v1.S3SourceSpec) { s.Validators = []v1.Validator{{Type: v1.ValidatorRegex, Pattern: "a*"}} }, "pattern must be an RE2 regular expression (Go regexp syntax) that does not match the empty string"},
		{"validator pattern too long", func(s *v1.S3SourceSpec) {
			s.Validators = []v1.Validator{{Type: v1.ValidatorRegex, Pattern: strings.Repeat("a", 257)}}
		}, "spec.validators[0].pattern"},
		{"validator unknown type", func(s *v1.S3SourceSpec) { s.Validators = []v1.Validator{{Type: "SSN"}} }, "spec.validators[0].type"},
		{"validator unknown action", func(s *v1.S3SourceSpec) { s.Validators = []v1.Validator{{Type: v1.ValidatorEmail, Action: "Drop"}} }, "spec.validators[0].action"},
		{"validator regions on card", func(s *v1.S3SourceSpec) {
			s.Validators = []v1.Validator{{Type: v1.ValidatorPaymentCard, Regions: []string{"US"}}}
		}, "regions are only for type PhoneNumber"},
		{"validator bad region", func(s *v1.S3SourceSpec) {
			s.Validators = []v1.Validator{{Type: v1.ValidatorPhoneNumber, Regions: []string{"usa"}}}
		}, "spec.validators[0].regions[0]"},
		{"validators with the same default name", func(s *v1.S3SourceSpec) {
			s.Validators = []v1.Validator{{Type: v1.ValidatorEmail}, {Type: v1.ValidatorEmail, Action: v1.ValidatorFlag}}
		}, "validators need distinct names"},
		{"a name equal to another validator's default name", func(s *v1.S3SourceSpec) {
			s.Validators = []v1.Validator{{Type: v1.ValidatorEmail}, {Name: "email", Type: v1.ValidatorPhoneNumber}}
		}, "validators need distinct names"},
		{"too many validators", func(s *v1.S3SourceSpec) {
			for i := range 17 {
				s.Validators = append(s.Validators, v1.Validator{Name: fmt.Sprintf("v%d", i), Type: v1.ValidatorEmail})
			}
		}, "spec.validators"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := validSource()
			tt.mutate(&spec)
			src := &v1.S3Source{ObjectMeta: metav1.ObjectMeta{Name: newName("validation"), Namespace: "default"}, Spec: spec}
			err := k8s.Create(context.Background(), src)
			checkAdmission(t, err, tt.wantErr)
		})
	}
}

func TestIngestionQuotaValidation(t *testing.T) {
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	tests := []struct {
		name    string
		spec    v1.IngestionQuotaSpec
		wantErr string
	}{
		{"valid", v1.IngestionQuotaSpec{DailyLimit: q("1Gi"), MaxFileSize: q("100Mi"), TimeZone: "Europe/Paris"}, ""},
		{"negative daily limit", v1.IngestionQuotaSpec{DailyLimit: q("-1"), MaxFileSize: q("-2")}, "dailyLimit must be greater than zero"},
		{"zero max file size", v1.IngestionQuotaSpec{DailyLimit: q("1G"), MaxFileSize: q("0")}, "maxFileSize must be greater than zero"},
		{"max file size above daily limit", v1.IngestionQuotaSpec{DailyLimit: q("10M"), MaxFileSize: q("20M")}, "maxFileSize must not exceed dailyLimit"},
		{"negative cooldown", v1.IngestionQuotaSpec{RefreshCooldown: &metav1.Duration{Duration: -time.Second}}, "refreshCooldown must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &v1.IngestionQuota{ObjectMeta: metav1.ObjectMeta{Name: newName("validation"), Namespace: "default"}, Spec: tt.spec}
			checkAdmission(t, k8s.Create(context.Background(), obj), tt.wantErr)
		})
	}
}

func checkAdmission(t *testing.T, err error, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("rejected a valid object: %v", err)
	case wantErr != "" && err == nil:
		t.Fatalf("accepted an invalid object, want an error containing %q", wantErr)
	case wantErr != "" && !apierrors.IsInvalid(err):
		t.Fatalf("want an Invalid error containing %q, got %v", wantErr, err)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Fatalf("error %q does not contain %q", err.Error(), wantErr)
	}
}

func TestPrintColumns(t *testing.T) {
	tests := []struct {
		crd         string
		wantColumns []string
		wantShort   string
	}{
		{"s3sources.dataimport.avon.ai", []string{"Bucket", "Prefix", "State", "Last Discovery", "Ingested", "Failed", "Ready", "Status", "Age"}, "s3src"},
		{"ingestionquotas.dataimport.avon.ai", []string{"Usage", "Limit", "Max File", "Capped", "Resets At", "Ready", "Age"}, "iquota"},
	}
	for _, tt := range tests {
		t.Run(tt.crd, func(t *testing.T) {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := k8s.Get(context.Background(), client.ObjectKey{Name: tt.crd}, crd); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
				got = append(got, c.Name)
				// A quota's limits columns show what is enforced, after the ceilings.
				if want, ok := map[string]string{"Limit": ".status.effectiveDailyLimit", "Max File": ".status.effectiveMaxFileSize"}[c.Name]; ok &&
					tt.wantShort == "iquota" && c.JSONPath != want {
					t.Errorf("column %s shows %s, want %s", c.Name, c.JSONPath, want)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.wantColumns, ",") {
				t.Errorf("print columns %v, want %v", got, tt.wantColumns)
			}
			if sn := crd.Spec.Names.ShortNames; len(sn) != 1 || sn[0] != tt.wantShort {
				t.Errorf("short names %v, want [%s]", sn, tt.wantShort)
			}
			if cats := crd.Spec.Names.Categories; len(cats) == 0 || cats[0] != "dataimport" {
				t.Errorf("categories %v, want dataimport first", cats)
			}
		})
	}
}

// TestKubectlExplain proves the documentation a user reads with `kubectl explain`.
func TestKubectlExplain(t *testing.T) {
	kubeconfig, err := env.Kubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want []string
	}{
		{"s3source.spec", []string{"bucket\t<string> -required-", "S3 bucket name", "interval", "Interval between discoveries", "credentials", "workload identity"}},
		{"s3source.spec.credentials.assumeRole", []string{"roleARN", "externalID"}},
		{"ingestionquota.spec", []string{"dailyLimit", "500,000,000 bytes", "timeZone", "IANA name"}},
		{"ingestionquota.status", []string{"effectiveDailyLimit", "--max-daily-limit", "effectiveMaxFileSize", "--max-file-size", "LimitsCapped"}},
		{"s3source.status", []string{"recentFileErrors", "lastDiscoveryTime", "nextDiscoveryTime"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			out, err := exec.Command(filepath.Join(env.Assets, "kubectl"), "--kubeconfig", kubeconfig, "explain", tt.path).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl explain %s: %v\n%s", tt.path, err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("kubectl explain %s lacks %q:\n%s", tt.path, w, out)
				}
			}
		})
	}
}
