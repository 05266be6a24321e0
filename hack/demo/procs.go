package main

import (
	"errors"
	"time"

	"github.com/avon-ai/data-import-operator/internal/testsupport/kube"
	"github.com/avon-ai/data-import-operator/internal/testsupport/minio"
	"github.com/avon-ai/data-import-operator/internal/testsupport/proc"
)

// stack is everything the demo started, stopped in reverse order of dependence.
type stack struct {
	kube    *kube.Env
	tenancy *kube.Tenancy // kube-controller-manager, aggregating the operator's roles
	s3      *minio.Server
	manager *proc.Process
}

// stop stops the operator first (so it does not log a vanished apiserver), then MinIO
// and kube-controller-manager, then the control plane. Safe on a partly started stack.
func (s *stack) stop() error {
	var errs []error
	if s.manager != nil {
		errs = append(errs, s.manager.Stop(30*time.Second))
	}
	if s.s3 != nil {
		s.s3.Stop()
	}
	if s.tenancy != nil {
		s.tenancy.Stop()
	}
	if s.kube != nil {
		errs = append(errs, s.kube.Stop())
	}
	return errors.Join(errs...)
}
