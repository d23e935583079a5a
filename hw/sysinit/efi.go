package sysinit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unicode/utf16"

	"golang.org/x/sys/unix"
)

// EFIVars is where the kernel shows the UEFI variables (efivarfs), on a unit booted by UEFI.
const EFIVars = "/sys/firmware/efi/efivars"

// LoaderGUID is the vendor GUID of the variables systemd-boot sets (the Boot Loader Interface).
const LoaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// MountEFIVars mounts efivarfs under root when the unit was booted by UEFI; booted otherwise (QEMU's
// -kernel), there are no variables and nothing is mounted.
func MountEFIVars(root string) error {
	if _, err := os.Stat(root + "/sys/firmware/efi"); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return MountAll(root, []Mount{{"efivarfs", EFIVars, "efivarfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o755}})
}

// LoaderVar reads systemd-boot's variable name (a UTF-16 string) from dir: "" when it is not set.
func LoaderVar(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+"-"+LoaderGUID))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read EFI variable %s: %w", name, err)
	}
	return decodeVar(b)
}

// decodeVar reads efivarfs's file format: 4 bytes of attributes, then the value, here UTF-16LE ending
// in a NUL.
func decodeVar(b []byte) (string, error) {
	if len(b) < 4 || len(b)%2 != 0 {
		return "", fmt.Errorf("EFI variable of %d bytes is not a string", len(b))
	}
	u := make([]uint16, 0, (len(b)-4)/2)
	for i := 4; i < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)), nil
}
