// Command demo boots one appliance in QEMU with three virtual disks (kept in build/demo/ across runs) and
// prints the web UI address, the certificate fingerprint and the setup code. Ctrl-C powers it off.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	qemutests "github.com/lawbox/appliance/qemu-tests"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	im, err := qemutests.LoadImage(".")
	if err != nil {
		return err
	}
	dir, _ := filepath.Abs("build/demo")
	port := 8443 // a stable address for the office's bookmark, unless something else holds it
	if l, err := net.Listen("tcp", "127.0.0.1:8443"); err != nil {
		port = 0
	} else {
		l.Close()
	}
	vm, err := qemutests.Start(im, qemutests.Config{Dir: dir, HostPort: port, Production: true, Disks: []qemutests.Disk{
		{ID: "disk1", Kind: qemutests.Virtio, Serial: "DEMO-DISK-1", SizeMiB: 1024},
		{ID: "disk2", Kind: qemutests.Virtio, Serial: "DEMO-DISK-2", SizeMiB: 1024},
		{ID: "disk3", Kind: qemutests.NVMe, Serial: "DEMO-NVME-3", SizeMiB: 1024},
	}})
	if err != nil {
		return err
	}
	defer vm.Close()
	fmt.Printf("booting the demo unit under QEMU (console log: %s/console.log)...\n", dir)
	fp, err := vm.Expect(regexp.MustCompile(`TLS certificate SHA-256 fingerprint: (\S+)`), 3*time.Minute)
	if err != nil {
		return err
	}
	m, err := vm.Expect(regexp.MustCompile(`setup code: (\S+)`), time.Minute)
	if err != nil {
		return err
	}
	code := m[1]
	if _, err := vm.Expect(regexp.MustCompile(`web UI ready`), time.Minute); err != nil {
		return err
	}
	fmt.Printf("\nweb UI:       %s\n", vm.URL("/"))
	fmt.Printf("certificate:  SHA-256 %s (self-signed; check it in the browser)\n", fp[1])
	fmt.Printf("setup code:   %s\n", code)
	fmt.Println("\nPress Ctrl-C to stop the unit (its state is in RAM for now: nothing to lose).")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		fmt.Println("stopping the unit")
	case <-waitExit(vm):
		fmt.Println("the unit powered off")
	}
	return nil
}

func waitExit(vm *qemutests.VM) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for vm.Wait(time.Hour) != nil {
		}
		close(ch)
	}()
	return ch
}
