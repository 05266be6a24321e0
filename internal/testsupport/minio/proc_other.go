//go:build !linux

package minio

import "os/exec"

// setParentDeathSignal has no portable equivalent; Stop still ends the server.
func setParentDeathSignal(*exec.Cmd) {}
