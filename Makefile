# data-import-operator. `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
export GOTOOLCHAIN := local

include hack/versions.env
IMG ?= ghcr.io/avon-ai/data-import-operator:dev
CHART := charts/data-import-operator
CONTROLLER_GEN := go tool controller-gen
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m
FUZZTIME ?= 30s
# Minimizing each new interesting input can take the whole budget of a short run.
FUZZMINIMIZETIME ?= 1s
# How long `make test` fuzzes each target (the seed corpora also run as plain tests): a
# count of executions, not a duration. With a duration, Go 1.26's fuzz coordinator can end
# a run that found nothing with "context deadline exceeded" and a failure when a worker is
# mid-execution at the deadline (go.dev/issue/75804, fixed in Go 1.27); a count has no
# deadline to race. 4000 executions take about 5 s a target here.
TEST_FUZZTIME ?= 4000x

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Regenerate CRDs and RBAC from the Go markers.
	$(CONTROLLER_GEN) crd rbac:roleName=manager-role paths="./api/...;./controllers/..." output:crd:dir=config/crd/bases output:rbac:dir=config/rbac

.PHONY: generate
generate: ## Regenerate deepcopy code.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: fmt
fmt: ## Format the code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: check-fmt
check-fmt: ## Fail when a Go file is not gofmt-ed.
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [[ -n "$$out" ]]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml $(CHART)/crds $(CHART)/files

.PHONY: check-generated
check-generated: manifests generate chart-sync ## Fail when generated files differ from what is committed.
	@if [[ -n "$$(git status --porcelain --untracked-files=all -- $(GENERATED))" ]]; then \
	  echo "generated files are stale; run 'make manifests generate' and commit:"; git status --porcelain -- $(GENERATED); git diff -- $(GENERATED) | head -50; exit 1; fi

##@ Tools (built from the Go module proxy into caches outside the repo)

.PHONY: envtest
envtest: ## Build kube-apiserver, kubectl and etcd for envtest.
	@bash hack/envtest-assets.sh >/dev/null

.PHONY: minio
minio: ## Build the pinned MinIO server.
	@bash hack/minio.sh >/dev/null

.PHONY: postgres
postgres: ## Install PostgreSQL (Debian package) when initdb is missing.
	@bash hack/postgres.sh >/dev/null

.PHONY: helm
helm: ## Build the pinned Helm CLI.
	@bash hack/helm.sh >/dev/null

.PHONY: runc
runc: ## Install runc and umoci (Debian packages) when missing: the image test runs the image with them.
	@bash hack/runc.sh >/dev/null

.PHONY: tools
tools: envtest minio postgres helm runc ## Build or install every tool the tests need.

##@ Test

.PHONY: test
test: check-fmt vet check-generated check-docs tools ## Run every check and every test (envtest, MinIO, PostgreSQL), with -race, then each fuzz target briefly.
	KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh)" go test $(GO_TEST_FLAGS) ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s).
	@for t in $$(go test -list '^Fuzz' ./internal/ingest/ | grep ^Fuzz); do \
	  echo "== $$t"; go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./internal/ingest/; done

.PHONY: bench
# The incremental-listing benchmark's history defaults to 100,000 objects here: 1,000,000
# (DISCOVERY_BENCH_HISTORY=1000000) takes about an hour to generate on 2 cores the first
# time, then is cached under the tools cache.
bench: tools ## Run the benchmarks (ingest throughput and memory, S3 listing, incremental vs full discovery).
	DISCOVERY_BENCH_HISTORY="$${DISCOVERY_BENCH_HISTORY:-100000}" KUBEBUILDER_ASSETS="$$(bash hack/envtest-assets.sh)" go test -run '^$$' -bench . -benchmem -count 1 -timeout 180m ./internal/...

##@ Build

.PHONY: build
build: ## Build the manager and the data-import CLI into bin/.
	go build -o bin/manager ./cmd
	go build -o bin/data-import ./cmd/data-import

.PHONY: run
run: manifests generate ## Run the manager against the cluster in ~/.kube/config.
	go run ./cmd

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the container image.
	docker push $(IMG)

##@ Helm chart

# The roles of config/rbac the chart takes its rules from (files/rbac): all but the bindings
# and the ServiceAccount, which the chart writes itself.
CHART_ROLES := role leader_election_role metrics_auth_role metrics_reader_role \
  s3source_admin_role s3source_editor_role s3source_viewer_role \
  ingestionquota_admin_role ingestionquota_editor_role ingestionquota_viewer_role

.PHONY: chart-sync
chart-sync: ## Copy the CRDs, the roles and the alert rules of config/ into the Helm chart (config/chart_test.go fails while they differ).
	@mkdir -p $(CHART)/crds $(CHART)/files/rbac $(CHART)/files/prometheus
	@rm -f $(CHART)/crds/*.yaml $(CHART)/files/rbac/*.yaml
	@cp config/crd/bases/*.yaml $(CHART)/crds/
	@for r in $(CHART_ROLES); do cp config/rbac/$$r.yaml $(CHART)/files/rbac/; done
	@cp config/prometheus/rules.yaml $(CHART)/files/prometheus/rules.yaml

.PHONY: chart-lint
chart-lint: helm ## Lint the Helm chart with its default and PostgreSQL values (also run by config/chart_test.go).
	"$$(bash hack/helm.sh)" lint --strict $(CHART)
	"$$(bash hack/helm.sh)" lint --strict $(CHART) -f $(CHART)/ci/postgres-values.yaml

.PHONY: chart-package
chart-package: helm chart-sync ## Package the Helm chart into dist/; VERSION=v1.2.3 sets its version and appVersion (the image tag).
	@mkdir -p dist
	"$$(bash hack/helm.sh)" package $(CHART) --destination dist $(if $(VERSION),--version $(patsubst v%,%,$(VERSION)) --app-version $(VERSION))

##@ Image and release (no Docker daemon, no base image)

IMAGE_REPO ?= ghcr.io/avon-ai/data-import-operator
DIST ?= dist

# IMAGE_ARCH: the image's architecture (default the host's), e.g. arm64 for kind on Apple silicon.
IMAGE_ARCH ?=

.PHONY: image
image: ## Build the manager image IMG with hack/image: dist/image.tar (docker load, kind load image-archive, ctr import), dist/image/ (OCI layout), dist/image.ref.
	go run ./hack/image --ref $(IMG) --out $(DIST) $(if $(IMAGE_ARCH),--goarch $(IMAGE_ARCH))

# The chart (dist/ too) is packaged by a chart-package target when the Makefile has one.
.PHONY: release
release: ## Build the image IMAGE_REPO:VERSION and write dist/install.yaml (CRDs, RBAC, manager) pinned to its tag and digest: make release VERSION=v0.1.0.
	@[[ "$(VERSION)" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$$ ]] || { echo "make release needs VERSION=vMAJOR.MINOR.PATCH, got '$(VERSION)'"; exit 1; }
	$(MAKE) --no-print-directory image IMG=$(IMAGE_REPO):$(VERSION) DIST=$(DIST)
	@ref="$$(cat $(DIST)/image.ref)"; kubectl="$$(bash hack/envtest-assets.sh)/kubectl"; \
	  { echo "# data-import-operator $(VERSION): CRDs, RBAC and the manager, image $$ref"; \
	    echo "#   kubectl apply --server-side -f install.yaml"; \
	    "$$kubectl" kustomize config/default | sed -E 's|$(IMAGE_REPO):[^"[:space:]]+|'"$$ref"'|'; } > $(DIST)/install.yaml; \
	  echo "$(DIST)/install.yaml: image $$ref"
	@if $(MAKE) -n chart-package >/dev/null 2>&1; then $(MAKE) --no-print-directory chart-package VERSION=$(VERSION) DIST=$(DIST); fi

##@ Deployment

KUBECTL ?= kubectl

.PHONY: install
install: manifests ## Install the CRDs into the cluster in ~/.kube/config.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs (and so every S3Source and IngestionQuota).
	$(KUBECTL) delete -k config/crd --ignore-not-found

.PHONY: deploy
deploy: manifests ## Deploy the operator with config/default, image IMG.
	$(KUBECTL) kustomize config/default | sed -E 's|ghcr.io/avon-ai/data-import-operator:[^"[:space:]]+|$(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator deployed with config/default.
	$(KUBECTL) delete -k config/default --ignore-not-found

##@ Demo and docs

.PHONY: demo
demo: ## Walk through the product guide locally (apiserver, MinIO, the operator); DEMO_ONCE=1 checks and exits.
	go build -o bin/demo ./hack/demo
	./bin/demo $(if $(DEMO_ONCE),--once)

# crd-ref-docs runs as `go run module@version`: pinned here, and kept out of the operator's go.mod.
CRD_REF_DOCS_VERSION ?= v0.3.0

.PHONY: docs
docs: ## Regenerate docs/api.md from the Go types in api/ (crd-ref-docs, from the Go module proxy).
	go run github.com/elastic/crd-ref-docs@$(CRD_REF_DOCS_VERSION) --log-level ERROR \
	  --config docs/crd-ref-docs.yaml --source-path api/v1alpha1 --renderer markdown --output-path docs/api.md

.PHONY: check-docs
check-docs: docs ## Fail when docs/api.md is stale, or README.md or docs/*.md show a make target, data-import subcommand or flag, or manager flag that no longer exists.
	@if [[ -n "$$(git status --porcelain -- docs/api.md)" ]]; then \
	  echo "docs/api.md is stale; run 'make docs' and commit:"; git status --porcelain -- docs/api.md; git diff --stat -- docs/api.md; exit 1; fi
	go test -count=1 -run '^(TestExtract|TestDocCommandsExist)$$' ./docs/
