package minio

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal kills MinIO if the test binary dies without running cleanups.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
