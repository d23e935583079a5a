// Package qemutests boots the appliance image (build/image.json) under QEMU/TCG with virtual disks and
// networks, and injects faults: disk pull and insert, I/O errors, link cuts, NVMe SMART warnings, kill -9.
// The scenario tests in this directory use it; so does cmd/demo (make run).
package qemutests

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Image is build/image.json.
type Image struct {
	Version   string `json:"version"`
	Kernel    string `json:"kernel"`
	BzImage   string `json:"kernel_bzimage"` // the same kernel with its EFI stub, which OVMF starts
	Initramfs string `json:"initramfs"`      // production firmware
	// InitramfsTest is the same firmware with the serial-console test agent (appliance.debug=1): what
	// the tests boot unless Config.Production.
	InitramfsTest string `json:"initramfs_test"`
	UKI           string `json:"uki"`       // the production firmware as one UEFI image (kernel, initramfs, command line)
	Installer     string `json:"installer"` // an install disk: systemd-boot and the UKI on an EFI system partition
	Update        string `json:"update"`    // the firmware as a signed update bundle
	Build         int    `json:"build"`
	// TestBundles are update bundles for the update tests, signed with the same key: "next" (one build
	// newer) and "unhealthy" (a test build that never starts its daemon).
	TestBundles map[string]string `json:"test_bundles"`
	Cmdline     string            `json:"cmdline"`
	MemoryMiB   int               `json:"memory_mib"`
	root        string
}

// LoadImage reads the manifest under the repository root; its paths are relative to that root.
func LoadImage(root string) (Image, error) {
	var im Image
	b, err := os.ReadFile(filepath.Join(root, "build/image.json"))
	if err != nil {
		return im, fmt.Errorf("read image manifest (run 'make image'): %w", err)
	}
	if err := json.Unmarshal(b, &im); err != nil {
		return im, fmt.Errorf("decode build/image.json: %w", err)
	}
	im.root = root
	for _, p := range []string{im.Kernel, im.Initramfs, im.InitramfsTest, im.UKI, im.Installer, im.Update, im.TestBundles["next"], im.TestBundles["unhealthy"]} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			return im, fmt.Errorf("image file: %w", err)
		}
	}
	return im, nil
}

// DiskKind is how a disk is attached.
type DiskKind string

// Disk kinds.
const (
	Virtio DiskKind = "virtio" // virtio-blk on a PCIe root port: hot-pluggable
	NVMe   DiskKind = "nvme"   // NVMe on a PCIe root port: hot-pluggable, SMART settable over QMP
	AHCI   DiskKind = "ahci"   // SATA on the q35 AHCI controller: static SMART
)

// Disk is a virtual disk. ID names the QEMU device; Path is created (sparse) if it does not exist.
type Disk struct {
	ID      string
	Kind    DiskKind
	Serial  string
	SizeMiB int
	Path    string
	Faulty  bool // route I/O through blkdebug so InjectIOError can fail it
	// BootIndex orders the disks UEFI tries (QEMU's bootindex; 0: after those that have one)
	BootIndex int
}

// Config describes one VM.
type Config struct {
	Dir       string // working directory: console log, sockets, disk images
	Disks     []Disk
	MemoryMiB int      // 0: the image's
	Cmdline   []string // appended to the image's command line
	Hubs      []*Hub   // one more NIC per hub (eth1, eth2, ... in the guest)
	MACs      []string // their MAC addresses (a unit booted again keeps its own); default: new ones
	NoMgmtNet bool     // no user-networking NIC (and so no web UI from the host)
	// Production boots the production firmware, which has no test agent on its console.
	Production bool
	// UEFI boots as a real box does: OVMF firmware, which starts systemd-boot from a disk (no -kernel).
	UEFI bool
	// Reboot lets a reboot of the guest restart it in the same QEMU, as a real box does; otherwise QEMU
	// ends at the guest's reboot (-no-reboot).
	Reboot bool
	// TPM gives the VM a TPM 2.0 (swtpm) whose state lives in this directory: the same directory is the
	// same chip across boots, another one another box's. "": no TPM.
	TPM      string
	TPMModel string   // QEMU's device: "tpm-crb" when empty
	HostPort int      // host port forwarded to the guest's 443 on 127.0.0.1; 0 picks a free one
	GuestFwd []string // user-networking guestfwd rules, e.g. "tcp:198.18.0.100:5432-cmd:socat - TCP:127.0.0.1:PORT"
	// NativeHotplug has the guest drive the PCIe root ports' hot-plug itself (pciehp: slots with an attention
	// indicator, as an NVMe drive bay has) rather than through ACPI, q35's default, with which a pulled disk
	// goes at once.
	NativeHotplug bool
}

// VM is a running QEMU.
type VM struct {
	Dir      string
	HTTPS    string   // "127.0.0.1:PORT" forwarded to the guest's port 443
	Postgres string   // "127.0.0.1:PORT" forwarded to the guest's port 5432
	SMB      string   // "127.0.0.1:PORT" forwarded to the guest's port 445 (the file shares)
	HubPorts []int    // this VM's port on each of Config.Hubs
	MACs     []string // the MAC address of its NIC on each of Config.Hubs
	QMP      *QMP
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	console  string
	exited   chan struct{}
	exitErr  error
	freePort int // next free root port for hot-plugged disks
	swtpm    *exec.Cmd

	mu  sync.Mutex // guards pos
	pos int        // console offset consumed by Expect
}

const rootPorts = 8

// Start boots the image. Close the VM when done.
func Start(im Image, cfg Config) (*VM, error) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, fmt.Errorf("qemu-system-x86_64 not found (apt-get install qemu-system-x86): %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	mem := cfg.MemoryMiB
	if mem == 0 {
		mem = im.MemoryMiB
	}
	vm := &VM{Dir: cfg.Dir, console: filepath.Join(cfg.Dir, "console.log"), exited: make(chan struct{})}
	qmpSock := filepath.Join(cfg.Dir, "qmp.sock")
	os.Remove(qmpSock)
	initrd := im.InitramfsTest
	if cfg.Production {
		initrd = im.Initramfs
	}
	args := []string{
		"-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "1", "-m", fmt.Sprint(mem),
		"-display", "none", "-serial", "stdio", "-monitor", "none",
		"-qmp", "unix:" + qmpSock + ",server=on,wait=off",
		"-device", "virtio-rng-pci",
	}
	if !cfg.Reboot {
		args = append(args, "-no-reboot")
	}
	if cfg.NativeHotplug {
		args = append(args, "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off")
	}
	boot, err := bootArgs(im, cfg, initrd)
	if err != nil {
		return nil, err
	}
	args = append(args, boot...)
	for i := range rootPorts {
		args = append(args, "-device", fmt.Sprintf("pcie-root-port,id=rp%d,bus=pcie.0,chassis=%d,slot=%d", i, i+1, i+1))
	}
	ahci := 0
	for _, d := range cfg.Disks {
		a, err := vm.diskArgs(d, &ahci)
		if err != nil {
			return nil, err
		}
		args = append(args, a...)
	}
	if cfg.TPM != "" {
		a, err := vm.tpmArgs(cfg)
		if err != nil {
			return nil, err
		}
		args = append(args, a...)
	}
	if !cfg.NoMgmtNet {
		mgmt, err := vm.mgmtArgs(cfg)
		if err != nil {
			return nil, err
		}
		args = append(args, mgmt...)
	}
	for i, h := range cfg.Hubs {
		n, vmPath, hubPath, err := h.AddPort()
		if err != nil {
			return nil, err
		}
		mac := nextMAC()
		if i < len(cfg.MACs) {
			mac = cfg.MACs[i]
		}
		vm.HubPorts, vm.MACs = append(vm.HubPorts, n), append(vm.MACs, mac)
		args = append(args,
			"-netdev", fmt.Sprintf("dgram,id=lan%d,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s", i, vmPath, hubPath),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=lan%d,id=lan%d,mac=%s", i, i, mac))
	}
	out, err := os.Create(vm.console)
	if err != nil {
		return nil, err
	}
	vm.cmd = exec.Command("qemu-system-x86_64", args...)
	vm.cmd.Stdout, vm.cmd.Stderr = out, out
	if vm.stdin, err = vm.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	os.WriteFile(filepath.Join(cfg.Dir, "qemu.args"), []byte(strings.Join(vm.cmd.Args, "\n")), 0o644)
	if err := vm.cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	go func() {
		vm.exitErr = vm.cmd.Wait()
		out.Close()
		close(vm.exited)
	}()
	if vm.QMP, err = DialQMP(qmpSock, 10*time.Second); err != nil {
		vm.Close()
		return nil, fmt.Errorf("%w (console: %s)", err, vm.Console())
	}
	return vm, nil
}

// bootArgs is how the VM boots: UEFI firmware (OVMF, with variables of its own) that finds a boot loader on
// the disks, or the image's kernel and initrd given directly.
func bootArgs(im Image, cfg Config, initrd string) ([]string, error) {
	if cfg.UEFI {
		vars := filepath.Join(cfg.Dir, "OVMF_VARS.fd") // the firmware's variables, the VM's own
		if err := copyFile(ovmfVars, vars); err != nil {
			return nil, fmt.Errorf("UEFI variables (apt-get install ovmf): %w", err)
		}
		return []string{"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfCode, "-drive", "if=pflash,format=raw,unit=1,file=" + vars}, nil
	}
	direct := []string{"-kernel", filepath.Join(im.root, im.Kernel), "-initrd", filepath.Join(im.root, initrd),
		"-append", strings.Join(append([]string{im.Cmdline}, cfg.Cmdline...), " ")}
	if cfg.TPM != "" {
		// SeaBIOS's direct boot places the initramfs where QEMU's ACPI tables and the TPM's event log end
		// up (the kernel then finds garbage for tables: no ACPI, no TPM, PCIe ports dead): a box with a
		// TPM boots UEFI anyway, and OVMF loads the kernel and initramfs where nothing else is.
		vars := filepath.Join(cfg.Dir, "OVMF_VARS.fd")
		if err := copyFile(ovmfVars, vars); err != nil {
			return nil, fmt.Errorf("UEFI variables (apt-get install ovmf): %w", err)
		}
		direct[1] = filepath.Join(im.root, im.BzImage)
		return append([]string{"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + ovmfCode, "-drive", "if=pflash,format=raw,unit=1,file=" + vars}, direct...), nil
	}
	return direct, nil
}

// mgmtArgs is the management NIC: user networking on 198.18.0.0/24 with the guest's HTTPS, PostgreSQL and
// SMB ports forwarded to free ports on 127.0.0.1 (vm.HTTPS, vm.Postgres, vm.SMB).
func (vm *VM) mgmtArgs(cfg Config) ([]string, error) {
	ports, err := freeTCPPorts(3)
	if err != nil {
		return nil, err
	}
	if cfg.HostPort != 0 {
		ports[0] = cfg.HostPort
	}
	vm.HTTPS = fmt.Sprintf("127.0.0.1:%d", ports[0])
	vm.Postgres = fmt.Sprintf("127.0.0.1:%d", ports[1])
	vm.SMB = fmt.Sprintf("127.0.0.1:%d", ports[2])
	netdev := fmt.Sprintf("user,id=mgmt,net=198.18.0.0/24,restrict=on,hostfwd=tcp:%s-:443,hostfwd=tcp:%s-:5432,hostfwd=tcp:%s-:445", vm.HTTPS, vm.Postgres, vm.SMB)
	for _, g := range cfg.GuestFwd {
		netdev += ",guestfwd=" + g
	}
	return []string{"-netdev", netdev, "-device", "virtio-net-pci,netdev=mgmt,id=mgmt"}, nil
}

// diskArgs returns the -blockdev/-device arguments of d, creating its image file.
func (vm *VM) diskArgs(d Disk, ahci *int) ([]string, error) {
	if err := vm.createDisk(&d); err != nil {
		return nil, err
	}
	blk, _ := json.Marshal(blockdev(d))
	var dev string
	switch d.Kind {
	case Virtio, "":
		dev = fmt.Sprintf("virtio-blk-pci,drive=%s,id=%s,serial=%s,bus=rp%d", d.ID, d.ID, d.Serial, vm.freePort)
		if d.Faulty { // the guest's own write-zeroes (mdadm zeroes a new array's parity log) must not trip blkdebug
			dev += ",write-zeroes=off"
		}
		vm.freePort++
	case NVMe:
		dev = fmt.Sprintf("nvme,drive=%s,id=%s,serial=%s,bus=rp%d", d.ID, d.ID, d.Serial, vm.freePort)
		vm.freePort++
	case AHCI:
		dev = fmt.Sprintf("ide-hd,drive=%s,id=%s,serial=%s,bus=ide.%d", d.ID, d.ID, d.Serial, *ahci)
		*ahci++
	default:
		return nil, fmt.Errorf("disk %s: unknown kind %q", d.ID, d.Kind)
	}
	if d.BootIndex > 0 {
		dev += fmt.Sprintf(",bootindex=%d", d.BootIndex)
	}
	if vm.freePort > rootPorts {
		return nil, fmt.Errorf("disk %s: more than %d PCIe disks", d.ID, rootPorts)
	}
	return []string{"-blockdev", string(blk), "-device", dev}, nil
}

func (vm *VM) createDisk(d *Disk) error {
	if d.Path == "" {
		d.Path = filepath.Join(vm.Dir, d.ID+".img")
	}
	if _, err := os.Stat(d.Path); err == nil {
		return nil
	}
	f, err := os.Create(d.Path)
	if err != nil {
		return fmt.Errorf("create disk %s: %w", d.ID, err)
	}
	defer f.Close()
	return f.Truncate(int64(d.SizeMiB) << 20)
}

// blockdev is the QMP/-blockdev node of a disk: raw over file, with blkdebug between them when Faulty.
// blkdebug starts in state 1; a write-zeroes request (InjectIOError) moves it to state 2, where every
// read, write and flush fails with EIO. The guest sees no write-zeroes on a Faulty virtio disk
// (diskArgs), so only InjectIOError's request moves it.
func blockdev(d Disk) map[string]any {
	file := map[string]any{"driver": "file", "filename": d.Path, "node-name": d.ID + "-file"}
	if d.Faulty {
		var inject []map[string]any
		for _, ev := range []string{"read_aio", "write_aio", "flush_to_disk"} {
			inject = append(inject, map[string]any{"event": ev, "state": 2, "errno": 5})
		}
		file = map[string]any{"driver": "blkdebug", "node-name": d.ID + "-dbg", "image": file,
			"inject-error": inject,
			"set-state":    []map[string]any{{"event": "pwritev_zero", "state": 1, "new_state": 2}}}
	}
	return map[string]any{"driver": "raw", "node-name": d.ID, "file": file}
}

var (
	macMu   sync.Mutex
	macNext int
)

// nextMAC returns a MAC address no other VM of this test process has.
func nextMAC() string {
	macMu.Lock()
	defer macMu.Unlock()
	macNext++
	return fmt.Sprintf("52:54:00:01:%02x:%02x", macNext>>8, macNext&0xff)
}

// freeTCPPorts returns n distinct free ports on 127.0.0.1: each is held until all are picked (picked one
// after another, closed at once, the kernel handed the same port out twice: the HTTPS and PostgreSQL
// forwards of a VM then collided and QEMU refused to start).
func freeTCPPorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Console returns everything the guest printed so far.
func (vm *VM) Console() string {
	b, _ := os.ReadFile(vm.console)
	return string(b)
}

// ErrExited means QEMU stopped while something was awaited.
var ErrExited = errors.New("qemu exited")

// Expect waits until the console, past what earlier Expects consumed, matches re, and returns the
// submatches. It fails when QEMU exits first or timeout passes.
func (vm *VM) Expect(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		vm.mu.Lock()
		out := vm.Console()
		if vm.pos > len(out) {
			vm.pos = len(out)
		}
		loc := re.FindStringSubmatchIndex(out[vm.pos:])
		if loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = out[vm.pos+loc[2*i] : vm.pos+loc[2*i+1]]
				}
			}
			vm.pos += loc[1]
			vm.mu.Unlock()
			return m, nil
		}
		vm.mu.Unlock()
		select {
		case <-vm.exited:
			if !re.MatchString(vm.Console()[vm.pos:]) {
				return nil, fmt.Errorf("waiting for %q: %w (%v)", re, ErrExited, vm.exitErr)
			}
			continue
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("waiting for %q: timed out after %v", re, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Send types a line on the serial console (the debug console reads it when appliance.debug is set).
func (vm *VM) Send(line string) error {
	_, err := io.WriteString(vm.stdin, line+"\n")
	return err
}

// Wait waits for QEMU to exit, up to timeout.
func (vm *VM) Wait(timeout time.Duration) error {
	select {
	case <-vm.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("qemu still running after %v", timeout)
	}
}

// Exited reports whether QEMU has stopped.
func (vm *VM) Exited() bool {
	select {
	case <-vm.exited:
		return true
	default:
		return false
	}
}

// Kill9 kills QEMU with SIGKILL: the unit loses power, its TPM (swtpm, whose state is kept) with it, so the
// same box can be started again.
func (vm *VM) Kill9() error {
	if err := vm.cmd.Process.Kill(); err != nil && !vm.Exited() {
		return err
	}
	err := vm.Wait(10 * time.Second)
	vm.stopTPM()
	return err
}

// stopTPM stops the VM's software TPM, if it has one.
func (vm *VM) stopTPM() {
	if vm.swtpm != nil {
		_ = vm.swtpm.Process.Kill()
		_ = vm.swtpm.Wait()
		vm.swtpm = nil
	}
}

// Close stops QEMU and releases its resources. It is safe to call twice.
func (vm *VM) Close() {
	if vm.QMP != nil {
		vm.QMP.Close()
	}
	if vm.cmd != nil && vm.cmd.Process != nil && !vm.Exited() {
		_ = vm.Kill9()
	}
	vm.stopTPM()
}

// tpmArgs starts a software TPM 2.0 (swtpm, make deps installs it) with its state in cfg.TPM and answers
// the arguments that give it to the VM, as a box's chip.
func (vm *VM) tpmArgs(cfg Config) ([]string, error) {
	if err := os.MkdirAll(cfg.TPM, 0o700); err != nil {
		return nil, err
	}
	sock := filepath.Join(cfg.Dir, "swtpm.sock")
	os.Remove(sock)
	vm.swtpm = exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+cfg.TPM, "--ctrl", "type=unixio,path="+sock)
	if err := vm.swtpm.Start(); err != nil {
		vm.swtpm = nil
		return nil, fmt.Errorf("start swtpm (apt-get install swtpm): %w", err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("swtpm did not open %s", sock)
		}
	}
	return []string{"-chardev", "socket,id=chrtpm,path=" + sock, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-crb,tpmdev=tpm0"}, nil
}

// HTTPClient returns a client for the guest's web UI that accepts only the certificate whose SHA-256
// fingerprint the console printed ("AB:CD:..."), as a careful user would check it.
func (vm *VM) HTTPClient(fingerprint string) *http.Client {
	want := strings.ReplaceAll(strings.ToUpper(fingerprint), ":", "")
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // self-signed: verified by fingerprint below
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("no certificate")
				}
				got := fmt.Sprintf("%X", sha256.Sum256(cs.PeerCertificates[0].Raw))
				if got != want {
					return fmt.Errorf("certificate fingerprint %s, console said %s", got, want)
				}
				return nil
			},
		}},
	}
}

// URL returns the host-side address of path on the guest's web UI.
func (vm *VM) URL(path string) string { return "https://" + vm.HTTPS + path }

// OVMF, Debian's UEFI firmware for QEMU (package ovmf).
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// copyFile copies src to dst.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// freeTCPPort returns one free port on 127.0.0.1.
func freeTCPPort() (int, error) {
	p, err := freeTCPPorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}
