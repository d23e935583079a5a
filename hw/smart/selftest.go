package smart

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	gosmart "github.com/anatol/smart.go"
	"golang.org/x/sys/unix"
)

// Self-test kinds.
const (
	Short = "short"
	Long  = "long"
)

// ErrSelfTestUnsupported means the disk refused the self-test command.
var ErrSelfTestUnsupported = errors.New("the disk does not run self-tests")

// StartSelfTest starts a short or long (extended) self-test in the disk's background; it returns at once.
// transport is hw/disk's (from sysfs): "nvme" disks take an NVMe admin command, the others ATA through SAT.
func StartSelfTest(path, transport, kind string) error {
	code := map[string]uint8{Short: 1, Long: 2}[kind]
	if code == 0 {
		return fmt.Errorf("self-test %q: use %q or %q", kind, Short, Long)
	}
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("self-test on %s: %w", path, err)
	}
	defer f.Close()
	if transport == "nvme" {
		cmd := nvmeSelfTestCmd(code)
		if err := nvmeAdmin(f, &cmd); err != nil {
			return fmt.Errorf("self-test on %s: %w", path, err)
		}
		return nil
	}
	cdb := ataSelfTestCDB(code)
	if err := sgio(f, cdb[:]); err != nil {
		return fmt.Errorf("self-test on %s: %w", path, err)
	}
	return nil
}

// nvmeSelfTestCmd is Device Self-test (admin opcode 14h), CDW10 bits 3:0 the code (1 short, 2 extended),
// on all namespaces.
func nvmeSelfTestCmd(code uint8) nvmeAdminCmd {
	return nvmeAdminCmd{opcode: 0x14, nsid: 0xffffffff, cdw10: uint32(code), timeoutMs: 10000}
}

// nvmeSelfTestLogCmd is Get Log Page (admin opcode 02h) of the Device Self-test log (06h) into buf: CDW10
// holds the log id in bits 7:0 and the number of dwords minus one (NUMDL) in bits 31:16.
func nvmeSelfTestLogCmd(buf []byte) nvmeAdminCmd {
	return nvmeAdminCmd{opcode: 0x02, nsid: 0xffffffff, addr: uint64(uintptr(unsafe.Pointer(&buf[0]))),
		dataLen: uint32(len(buf)), cdw10: 0x06 | uint32(len(buf)/4-1)<<16, timeoutMs: 10000}
}

// ataSelfTestCDB is SMART EXECUTE OFF-LINE IMMEDIATE (command B0h, feature D4h, LBA low = 1 short / 2
// extended, LBA mid/high 4Fh/C2h) in an ATA PASS-THROUGH(16) CDB (SAT-4: opcode 85h, protocol 3 non-data).
func ataSelfTestCDB(code uint8) [16]byte {
	return [16]byte{0: 0x85, 1: 3 << 1, 4: 0xd4, 8: code, 10: 0x4f, 12: 0xc2, 14: 0xb0}
}

// SelfTestResult is the newest entry of a disk's self-test log.
type SelfTestResult struct {
	Running  bool   `json:"running"`
	Progress int    `json:"progress_pct,omitempty"` // of a running test, when the disk says
	Status   string `json:"status"`                 // "passed", "aborted", "failed: ...", "none"
	Passed   bool   `json:"passed"`
}

// LastSelfTest reads the self-test log; transport as StartSelfTest's.
func LastSelfTest(path, transport string) (SelfTestResult, error) {
	if transport == "nvme" {
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		if err != nil {
			return SelfTestResult{}, err
		}
		defer f.Close()
		buf := make([]byte, 564) // Device Self-test log (06h)
		cmd := nvmeSelfTestLogCmd(buf)
		if err := nvmeAdmin(f, &cmd); err != nil {
			return SelfTestResult{}, fmt.Errorf("read self-test log of %s: %w", path, err)
		}
		return ParseNVMeSelfTestLog(buf), nil
	}
	d, err := gosmart.OpenSata(path)
	if err != nil {
		return SelfTestResult{}, fmt.Errorf("read self-test log of %s: %w", path, err)
	}
	defer d.Close()
	l, err := d.ReadSMARTSelfTestLog()
	if err != nil {
		return SelfTestResult{}, fmt.Errorf("read self-test log of %s: %w", path, err)
	}
	if l.Index == 0 {
		return SelfTestResult{Status: "none"}, nil
	}
	return ataSelfTestStatus(l.Entry[(int(l.Index)+20)%21].Status), nil
}

// ataSelfTestStatus decodes an ATA self-test log entry's status byte (ACS-3 table 131: bits 7:4).
func ataSelfTestStatus(b byte) SelfTestResult {
	switch b >> 4 {
	case 0:
		return SelfTestResult{Status: "passed", Passed: true}
	case 1, 2:
		return SelfTestResult{Status: "aborted"}
	case 15:
		return SelfTestResult{Running: true, Progress: 100 - int(b&0x0f)*10, Status: "running"}
	case 3:
		return SelfTestResult{Status: "failed: fatal error"}
	case 5:
		return SelfTestResult{Status: "failed: electrical element"}
	case 6:
		return SelfTestResult{Status: "failed: servo or seek element"}
	case 7:
		return SelfTestResult{Status: "failed: read element"}
	case 8:
		return SelfTestResult{Status: "failed: handling damage"}
	}
	return SelfTestResult{Status: fmt.Sprintf("failed: code %d", b>>4)}
}

// ParseNVMeSelfTestLog decodes log page 06h: byte 0 the running operation, byte 1 its completion, then
// 28-byte result entries, newest first (result in bits 3:0 of their first byte; Fh = unused).
func ParseNVMeSelfTestLog(b []byte) SelfTestResult {
	if len(b) < 32 {
		return SelfTestResult{Status: "none"}
	}
	if b[0]&0x0f != 0 {
		return SelfTestResult{Running: true, Progress: int(b[1] & 0x7f), Status: "running"}
	}
	switch r := b[4] & 0x0f; r {
	case 0:
		return SelfTestResult{Status: "passed", Passed: true}
	case 0xf:
		return SelfTestResult{Status: "none"}
	case 1, 2, 3:
		return SelfTestResult{Status: "aborted"}
	default:
		return SelfTestResult{Status: fmt.Sprintf("failed: result %d (failing segment %d)", r, b[5])}
	}
}

// nvmeAdminCmd is struct nvme_passthru_cmd (include/uapi/linux/nvme_ioctl.h).
type nvmeAdminCmd struct {
	opcode      uint8
	flags       uint8
	_           uint16
	nsid        uint32
	cdw2, cdw3  uint32
	metadata    uint64
	addr        uint64
	metadataLen uint32
	dataLen     uint32
	cdw10       uint32
	cdw11       uint32
	cdw12       uint32
	cdw13       uint32
	cdw14       uint32
	cdw15       uint32
	timeoutMs   uint32
	result      uint32
}

// nvmeAdminIoctl is NVME_IOCTL_ADMIN_CMD, _IOWR('N', 0x41, struct nvme_passthru_cmd).
var nvmeAdminIoctl = uintptr(3<<30 | uint32(unsafe.Sizeof(nvmeAdminCmd{}))<<16 | 'N'<<8 | 0x41)

func nvmeAdmin(f *os.File, cmd *nvmeAdminCmd) error {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), nvmeAdminIoctl, uintptr(unsafe.Pointer(cmd)))
	if errno != 0 {
		return fmt.Errorf("NVMe admin command %#x: %w", cmd.opcode, errno)
	}
	if r != 0 { // NVMe status: 0x01 invalid opcode, 0x02 invalid field
		if sc := r & 0xff; sc == 0x01 || sc == 0x02 {
			return fmt.Errorf("NVMe admin command %#x: status %#x: %w", cmd.opcode, r, ErrSelfTestUnsupported)
		}
		return fmt.Errorf("NVMe admin command %#x: status %#x", cmd.opcode, r)
	}
	return nil
}

// sgHdr is struct sg_io_hdr (include/scsi/sg.h).
type sgHdr struct {
	interfaceID    int32
	dxferDirection int32
	cmdLen         uint8
	mxSbLen        uint8
	iovecCount     uint16
	dxferLen       uint32
	dxferp         uintptr
	cmdp           uintptr
	sbp            uintptr
	timeout        uint32
	flags          uint32
	packID         int32
	usrPtr         uintptr
	status         uint8
	maskedStatus   uint8
	msgStatus      uint8
	sbLenWr        uint8
	hostStatus     uint16
	driverStatus   uint16
	resid          int32
	duration       uint32
	info           uint32
}

// sgio sends a non-data SCSI command and checks the ATA status it returns.
func sgio(f *os.File, cdb []byte) error {
	sense := make([]byte, 32)
	h := sgHdr{interfaceID: 'S', dxferDirection: -1 /* SG_DXFER_NONE */, cmdLen: uint8(len(cdb)), mxSbLen: uint8(len(sense)),
		cmdp: uintptr(unsafe.Pointer(&cdb[0])), sbp: uintptr(unsafe.Pointer(&sense[0])), timeout: 10000}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), 0x2285 /* SG_IO */, uintptr(unsafe.Pointer(&h))); errno != 0 {
		return fmt.Errorf("SG_IO: %w", errno)
	}
	if h.status != 0 || h.hostStatus != 0 || h.driverStatus&^0x08 != 0 {
		// An ATA abort comes back as CHECK CONDITION with the ATA error register in the sense descriptor.
		if len(sense) > 11 && sense[0] == 0x72 && sense[8] == 0x09 && sense[11]&0x04 != 0 {
			return ErrSelfTestUnsupported
		}
		return fmt.Errorf("SG_IO: status %#x host %#x driver %#x sense % x", h.status, h.hostStatus, h.driverStatus, sense[:h.sbLenWr])
	}
	return nil
}
