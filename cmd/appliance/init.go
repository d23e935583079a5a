package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lawbox/appliance/appliance/control"
	"github.com/lawbox/appliance/appliance/supervise"
	"github.com/lawbox/appliance/hw/kmod"
	"github.com/lawbox/appliance/hw/sysinit"
)

// bootPhases mounts, reads the kernel command line, loads the modules, names the host and makes the
// directories; it returns the command line.
func bootPhases(log *slog.Logger) map[string]string {
	var cmdline map[string]string
	phases := []phase{
		{"mount", func() error { return sysinit.MountAll("", sysinit.BaseMounts) }},
		{"cmdline", func() (err error) { cmdline, err = sysinit.ReadCmdline("/proc"); return err }},
		{"modules", loadModules},
		{"efivars", func() error { return sysinit.MountEFIVars("") }},
		{"hostname", func() error { return sysinit.SetHostname(hostname(cmdline)) }},
		{"dirs", func() error {
			// /var/lib must stay traversable: libpq looks for client certificates under the postgres
			// user's home (/var/lib/postgresql) and fails on "permission denied" rather than "not there".
			if err := os.MkdirAll("/var/lib", 0o755); err != nil {
				return err
			}
			for _, d := range []string{"/run/appliance", "/var/lib/appliance", "/var/log", "/root"} {
				if err := os.MkdirAll(d, 0o700); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, p := range phases {
		start := time.Now()
		if err := p.run(); err != nil {
			log.Error("boot phase failed", "phase", p.name, "err", err)
			continue
		}
		log.Info("boot phase done", "phase", p.name, "took", time.Since(start).Round(time.Millisecond))
	}
	return cmdline
}

// moduleList is the image's list of kernel modules (image/modules.txt), loaded in order at boot.
const moduleList = "/etc/modules.txt"

// The environment every service gets. PID 1 gets none from the kernel.
var serviceEnv = []string{
	"PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/postgresql/15/bin",
	"HOME=/root",
	"TZ=UTC",
}

// phase is one named step of boot. A failed phase is logged and boot goes on: a unit with no network or
// a missing module must still come up far enough to say so.
type phase struct {
	name string
	run  func() error
}

// runInit is PID 1. It never returns: if it did, the kernel would panic.
func runInit() {
	console := os.Stdout
	log := slog.New(slog.NewTextHandler(console, &slog.HandlerOptions{Level: slog.LevelInfo}))
	defer func() {
		r := recover()
		log.Error("PID 1 failed; the unit needs a restart", "panic", r, "stack", string(debug.Stack()))
		for {
			time.Sleep(time.Hour)
		}
	}()
	for _, kv := range serviceEnv {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	fmt.Fprintf(console, "appliance %s booting\n", version)

	cmdline := bootPhases(log)
	// Ctrl-Alt-Del becomes SIGINT to PID 1 instead of an immediate reboot.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)

	reaper := supervise.NewReaper(log)
	go reaper.Run(context.Background())

	self, err := os.Executable()
	if err != nil {
		self = "/bin/appliance"
	}
	env := append(serviceEnv, "HOSTNAME="+hostname(cmdline))
	services := []supervise.Service{
		{Name: "netd", Argv: []string{self, "netd"}, Env: env},
		{Name: "daemon", Argv: []string{self, "daemon"}, Env: env},
	}
	if testServices != nil {
		services = testServices(log, services)
	}
	sup := supervise.New(log, reaper, console, services)

	halt := make(chan sysinit.Action, 1)
	request := func(a sysinit.Action) {
		select {
		case halt <- a:
		default: // a shutdown is already under way
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGUSR2, unix.SIGPWR)
	go func() {
		for s := range sigs {
			if s == unix.SIGUSR2 || s == unix.SIGPWR {
				request(sysinit.PowerOff)
			} else {
				request(sysinit.Reboot)
			}
		}
	}()
	passed := startTrial(log, request)
	if err := serveControl(log, sup, request, passed); err != nil {
		log.Error("control socket", "err", err)
	}
	if cmdline["appliance.debug"] == "1" {
		if testAgent == nil {
			log.Warn("appliance.debug=1 ignored: production firmware has no test agent")
		} else {
			log.Warn("test agent on the serial console: this is test firmware, not for a unit in service")
			go testAgent(os.Stdin, console, sup, request)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	supDone := make(chan struct{})
	go func() {
		sup.Run(ctx)
		close(supDone)
	}()

	act := <-halt
	fmt.Fprintf(console, "stopping services to %s\n", act)
	cancel()
	select {
	case <-supDone:
	case <-time.After(30 * time.Second):
		log.Error("services did not stop in 30 s; going on")
	}
	unix.Sync()
	fmt.Fprintf(console, "services stopped; %s now\n", act)
	if err := sysinit.Halt(act); err != nil {
		log.Error("halt", "err", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}

func loadModules() error {
	f, err := os.Open(moduleList)
	if err != nil {
		return fmt.Errorf("open module list: %w", err)
	}
	defer f.Close()
	names, err := kmod.ParseList(f)
	if err != nil {
		return err
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	return kmod.Load("/", unix.ByteSliceToString(u.Release[:]), names)
}

// hostname is appliance.hostname= from the kernel command line, or "appliance-" and the end of the lowest
// of the ports' MAC addresses, so two units on one LAN get different names, and a unit the same name at
// every boot (the kernel does not number its ports in the same order every boot).
func hostname(cmdline map[string]string) string {
	if h := cmdline["appliance.hostname"]; h != "" {
		return h
	}
	var lowest net.HardwareAddr
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if len(i.HardwareAddr) == 6 && i.Flags&net.FlagLoopback == 0 && (lowest == nil || bytes.Compare(i.HardwareAddr, lowest) < 0) {
			lowest = i.HardwareAddr
		}
	}
	if lowest == nil {
		return "appliance"
	}
	return "appliance-" + hex.EncodeToString(lowest[3:])
}

// serveControl serves PID 1's control API on a root-only unix socket.
func serveControl(log *slog.Logger, sup *supervise.Supervisor, request func(sysinit.Action), passed func()) error {
	path := control.DefaultSocket
	_ = os.Remove(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	h := control.Handler(sup.Status, func(reboot bool) {
		if reboot {
			request(sysinit.Reboot)
		} else {
			request(sysinit.PowerOff)
		}
	}, passed)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil {
			log.Error("control socket stopped", "err", err)
		}
	}()
	return nil
}

// testAgent is the serial-console test agent (debug.go). It is built only into the test firmware (go build
// -tags lawboxtest, build/initramfs-test.cpio.zst), never into the production firmware.
var testAgent func(in io.Reader, out io.Writer, sup *supervise.Supervisor, request func(sysinit.Action))

// testServices changes the services PID 1 starts, in the test firmware only: a firmware that never
// becomes healthy, for the update tests.
var testServices func(log *slog.Logger, s []supervise.Service) []supervise.Service
