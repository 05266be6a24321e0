//go:build !linux

package main

import "syscall"

// childAttrs: own process group, so Ctrl-C reaches the demo only.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
