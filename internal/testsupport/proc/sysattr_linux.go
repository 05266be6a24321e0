package proc

import "syscall"

// childAttrs: own process group (Ctrl-C reaches the parent only), SIGTERM if the parent dies.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
