package smart

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"
)

// The structures handed to the kernel have the kernel's sizes on amd64, so the ioctl numbers encode them
// as the kernel's headers do: NVME_IOCTL_ADMIN_CMD is 0xC0484E41 (struct nvme_passthru_cmd, 72 bytes) and
// struct sg_io_hdr is 88 bytes.
func TestKernelStructures(t *testing.T) {
	if nvmeAdminIoctl != 0xC0484E41 {
		t.Errorf("NVME_IOCTL_ADMIN_CMD = %#x, want 0xc0484e41", nvmeAdminIoctl)
	}
	if n := unsafe.Sizeof(sgHdr{}); n != 88 {
		t.Errorf("sizeof(sg_io_hdr) = %d, want 88", n)
	}
	// Offsets the kernel reads (include/uapi/linux/nvme_ioctl.h).
	var c nvmeAdminCmd
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"nsid", unsafe.Offsetof(c.nsid), 4}, {"addr", unsafe.Offsetof(c.addr), 24}, {"data_len", unsafe.Offsetof(c.dataLen), 36},
		{"cdw10", unsafe.Offsetof(c.cdw10), 40}, {"timeout_ms", unsafe.Offsetof(c.timeoutMs), 64}, {"result", unsafe.Offsetof(c.result), 68},
	} {
		if f.got != f.want {
			t.Errorf("nvme_passthru_cmd.%s at %d, want %d", f.name, f.got, f.want)
		}
	}
}

// The commands' bytes, against the specifications' layouts.
func TestSelfTestCommandBytes(t *testing.T) {
	// SAT-4 ATA PASS-THROUGH(16) for SMART EXECUTE OFF-LINE IMMEDIATE, short (subcommand 1) and extended (2):
	// 85h | protocol 3 (non-data) << 1 | no transfer | features D4h | count 0 | LBA low = subcommand |
	// LBA mid 4Fh | LBA high C2h | device 0 | command B0h | control 0.
	for code, want := range map[uint8][]byte{
		1: {0x85, 0x06, 0x00, 0x00, 0xd4, 0x00, 0x00, 0x00, 0x01, 0x00, 0x4f, 0x00, 0xc2, 0x00, 0xb0, 0x00},
		2: {0x85, 0x06, 0x00, 0x00, 0xd4, 0x00, 0x00, 0x00, 0x02, 0x00, 0x4f, 0x00, 0xc2, 0x00, 0xb0, 0x00},
	} {
		if got := ataSelfTestCDB(code); !bytes.Equal(got[:], want) {
			t.Errorf("ATA self-test %d CDB = % x, want % x", code, got, want)
		}
	}
	// NVMe Device Self-test: opcode 14h, NSID FFFFFFFFh (all namespaces), CDW10 = STC (1 short, 2 extended).
	raw := func(c nvmeAdminCmd) []byte {
		b := (*[unsafe.Sizeof(nvmeAdminCmd{})]byte)(unsafe.Pointer(&c))
		return b[:]
	}
	b := raw(nvmeSelfTestCmd(2))
	if b[0] != 0x14 || binary.LittleEndian.Uint32(b[4:]) != 0xffffffff || binary.LittleEndian.Uint32(b[40:]) != 2 {
		t.Errorf("NVMe self-test command: % x", b)
	}
	// Get Log Page of log 06h, 564 bytes: NUMDL = 564/4 - 1 = 140 (8Ch) in CDW10 bits 31:16.
	buf := make([]byte, 564)
	b = raw(nvmeSelfTestLogCmd(buf))
	if b[0] != 0x02 || binary.LittleEndian.Uint32(b[40:]) != 0x008c0006 || binary.LittleEndian.Uint32(b[36:]) != 564 {
		t.Errorf("NVMe self-test log command: % x", b)
	}
}
