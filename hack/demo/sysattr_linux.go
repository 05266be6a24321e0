package main

import "syscall"

// childAttrs: own process group (Ctrl-C reaches the demo only), SIGTERM if the demo dies.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
