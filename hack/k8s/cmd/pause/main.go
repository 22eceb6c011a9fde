// Command pause is the sandbox ("pause") container of the real-node e2e harness: it holds
// a pod's namespaces and does nothing else. Kubernetes' own pause is C (build/pause); no
// registry is reachable here to pull it, so this is the same behaviour in Go: exit 0 on
// SIGINT/SIGTERM, reap orphaned children (it is PID 1 when the pod shares its PID
// namespace), otherwise sleep.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s == syscall.SIGCHLD {
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
