//go:build lawboxtest

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance/supervise"
	"github.com/lawbox/appliance/hw/raid"
	"github.com/lawbox/appliance/hw/sysinit"
	"golang.org/x/sys/unix"
)

// testTrial is set by image/build.sh for the update tests' bundle that must never become healthy
// ("never-healthy"): PID 1 does not start the daemon, and the trial's deadline is short.
var testTrial = ""

func init() {
	testAgent = debugConsole
	if testTrial == "never-healthy" {
		trialDeadline = 30 * time.Second
		testServices = func(log *slog.Logger, s []supervise.Service) []supervise.Service {
			log.Warn("test firmware that never becomes healthy: the daemon is not started")
			return slices.DeleteFunc(s, func(s supervise.Service) bool { return s.Name == "daemon" })
		}
	}
}

// debugConsole reads commands from the serial console when the kernel command line has appliance.debug=1
// and the firmware is a test build (tag lawboxtest). It is how the QEMU tests inject a service crash and
// write test data; it has no authentication, so it never ships. It runs in PID 1: its commands run under
// the reaper (sup.Output, sup.CombinedOutput), never os/exec, which would race the reaper for their exit
// status.
//
//	services               list services (with pid and resident memory)
//	signal NAME SIGNAL     send a signal (e.g. SEGV, KILL) to a service
//	read DISK              read its first 4 KiB past the page cache (prints <nil> or the error)
//	fill FILE MIB SEED     write MIB MiB of pseudo-random data, fsync, print its SHA-256
//	sum FILE               print a file's SHA-256 (read past the page cache)
//	rawwrite DISK MIB [AT] write MIB MiB at AT MiB of a disk with O_DIRECT, print the MB/s (destroys its data)
//	mdstat                 print /proc/mdstat
//	mdwrite bitmap|ppl MIB DISK...  make a scratch RAID 5 (md9) of whole disks with that consistency
//	                       policy, write MIB MiB to it with O_DIRECT, print the MB/s, stop it
//	drbd                   print /proc/drbd
//	volumes                print lvm's vgs and lvs reports (JSON, one line each)
//	smartctl DISK          print how long smartctl -a took and its JSON on one line (the tests' outside oracle)
//	capture                print what the storage planner reads, as a tar.gz (see captureStorage)
//	poweroff | reboot
//	text, cryptwrite, corruptroot  see cryptDebug
//
// and the network commands of netDebug.
func debugConsole(in io.Reader, out io.Writer, sup *supervise.Supervisor, request func(sysinit.Action)) {
	sc := bufio.NewScanner(in)
	var nd netDebug
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || nd.command(f, out) || cryptDebug(f, out) {
			continue
		}
		switch {
		case f[0] == "services":
			for _, s := range sup.Status() {
				fmt.Fprintf(out, "debug: service %s %s pid=%d restarts=%d rss_kib=%d\n", s.Name, s.State, s.PID, s.Restarts, rssKiB(s.PID))
			}
		case f[0] == "signal" && len(f) == 3:
			sig := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(f[2]), "SIG"))
			if sig == 0 {
				fmt.Fprintf(out, "debug: unknown signal %s\n", f[2])
				continue
			}
			if err := sup.Signal(f[1], sig); err != nil {
				fmt.Fprintf(out, "debug: %v\n", err)
				continue
			}
			fmt.Fprintf(out, "debug: sent %s to %s\n", unix.SignalName(sig), f[1])
		case f[0] == "read" && len(f) == 2:
			fmt.Fprintf(out, "debug: read /dev/%s: %v\n", f[1], readDirect("/dev/"+filepath.Base(f[1])))
		case f[0] == "fill" && len(f) == 4:
			mib, _ := strconv.Atoi(f[2])
			seed, _ := strconv.ParseUint(f[3], 10, 64)
			sum, err := debugFill(f[1], mib, seed)
			fmt.Fprintf(out, "debug: fill %s: %s %v\n", f[1], sum, err)
		case f[0] == "sum" && len(f) == 2:
			sum, err := debugSum(f[1])
			fmt.Fprintf(out, "debug: sum %s: %s %v\n", f[1], sum, err)
		case f[0] == "rawwrite" && (len(f) == 3 || len(f) == 4):
			mib, _ := strconv.Atoi(f[2])
			off := 0
			if len(f) == 4 {
				off, _ = strconv.Atoi(f[3])
			}
			mbs, err := rawWrite("/dev/"+filepath.Base(f[1]), mib, off)
			fmt.Fprintf(out, "debug: rawwrite %s: %.1f MB/s %v\n", f[1], mbs, err)
		case f[0] == "smartctl" && len(f) == 2:
			start := time.Now()
			js, _ := sup.Output(context.Background(), "/sbin/smartctl", "--json=c", "-a", "/dev/"+filepath.Base(f[1])) // exit bits carry health
			fmt.Fprintf(out, "debug: smartctl %s %.1fms %s\n", f[1], float64(time.Since(start).Microseconds())/1000, bytes.TrimSpace(js))
		case f[0] == "mdstat":
			b, _ := os.ReadFile("/proc/mdstat")
			fmt.Fprintf(out, "debug: mdstat\n%s\ndebug: end\n", b)
		case f[0] == "mdwrite" && len(f) >= 5: // the bench's A/B of a RAID 5's consistency policies
			mib, _ := strconv.Atoi(f[2])
			mbs, err := mdWrite(sup.CombinedOutput, f[1], mib, f[3:])
			fmt.Fprintf(out, "debug: mdwrite %s: %.1f MB/s %v\n", f[1], mbs, err)
		case f[0] == "drbd":
			b, _ := os.ReadFile("/proc/drbd")
			fmt.Fprintf(out, "debug: drbd\n%s\ndebug: end\n", b)
		case f[0] == "volumes": // the volume group's reports, as the unit tests of hw/lvm read them
			for _, cmd := range [][]string{{"vgs", "vg_name,vg_size,vg_free"}, {"lvs", "vg_name,lv_name,lv_size,lv_active"}} {
				b, err := sup.Output(context.Background(), "/sbin/lvm", cmd[0], "--config", `devices { filter=["a|^/dev/md1$|","a|^/dev/mapper/data-crypt$|","r|.*|"] use_devicesfile=0 }`,
					"--reportformat", "json", "--units", "b", "--nosuffix", "-o", cmd[1])
				fmt.Fprintf(out, "debug: %s %s %v\n", cmd[0], strings.Join(strings.Fields(string(b)), " "), err)
			}
		case f[0] == "capture":
			if err := captureStorage(out, sup.CombinedOutput); err != nil {
				fmt.Fprintf(out, "debug: capture: %v\n", err)
			}
		case f[0] == "poweroff":
			request(sysinit.PowerOff)
		case f[0] == "reboot":
			request(sysinit.Reboot)
		default:
			fmt.Fprintf(out, "debug: unknown command %q\n", sc.Text())
		}
	}
}

// rssKiB is a process's resident memory (VmRSS), 0 when it cannot be read.
func rssKiB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// readDirect reads the first 4 KiB of a block device with O_DIRECT, so the disk itself answers.
func readDirect(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // page-aligned
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)
	_, err = unix.Pread(fd, buf, 0)
	return err
}

// debugFill writes mib MiB of data drawn from seed to path and returns its SHA-256.
func debugFill(path string, mib int, seed uint64) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	buf := make([]byte, 1<<20)
	for range mib {
		_, _ = rng.Read(buf)
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			return "", err
		}
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// debugSum hashes a file, dropping the page cache first so the disks answer.
func debugSum(path string) (string, error) {
	unix.Sync()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200)
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// rawWrite writes mib MiB at offset at MiB of a block device with O_DIRECT and returns the rate in MB/s.
func rawWrite(path string, mib, at int) (float64, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_DIRECT|unix.O_EXCL, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return 0, err
	}
	defer unix.Munmap(buf)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	for i := range mib {
		if _, err := unix.Pwrite(fd, buf, int64(at+i)<<20); err != nil {
			return 0, err
		}
	}
	if err := unix.Fsync(fd); err != nil {
		return 0, err
	}
	return float64(mib) * (1 << 20) / 1e6 / time.Since(start).Seconds(), nil
}

// mdWrite makes md9, a RAID 5 of disks (whole, scratch) with the consistency policy (raid.Bitmap or
// raid.PPL), writes mib MiB to it and stops it.
func mdWrite(run raid.Runner, policy string, mib int, disks []string) (float64, error) {
	var devs []string
	for _, d := range disks {
		devs = append(devs, "/dev/"+filepath.Base(d))
	}
	md := &raid.MDADM{Path: "/sbin/mdadm", Run: run}
	opt := raid.CreateOptions{Level: 5, Name: "scratch", Devices: devs, Consistency: policy, AssumeClean: true}
	if err := md.Create(context.Background(), "/dev/md9", opt); err != nil {
		return 0, err
	}
	mbs, err := rawWrite("/dev/md9", mib, 0)
	if err := md.Stop(context.Background(), "/dev/md9"); err != nil {
		return 0, err
	}
	return mbs, err
}
