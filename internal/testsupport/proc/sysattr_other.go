//go:build !linux

package proc

import "syscall"

// childAttrs: own process group, so Ctrl-C reaches the parent only.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
