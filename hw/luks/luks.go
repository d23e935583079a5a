// Package luks drives cryptsetup for LUKS2 devices: format, open, close, resize, keyslots and the
// header's tokens. Like hw/raid it runs argv only and decides nothing; appliance/storage decides. Keys
// never appear in argv or in a file: cryptsetup reads them from standard input, and a second key from a
// pipe it sees as /proc/self/fd/3 (the firmware has no /dev/fd).
//
// The firmware has no udev: libdevmapper creates the /dev nodes itself (DM_DISABLE_UDEV), and cryptsetup
// takes no locks (one caller, the storage manager, serialises its calls).
package luks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Cryptsetup runs cryptsetup.
type Cryptsetup struct {
	Path string // "cryptsetup" when empty
}

// Keys are random (32 bytes from the kernel's generator, or a recovery key of 160 random bits), not
// passwords: a slow key derivation adds nothing against guessing them, and argon2id's memory would cost
// seconds at every boot. PBKDF2 at its minimum is what cryptsetup itself uses for a key file's slots
// when told the key is strong.
var kdf = []string{"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}

func (c *Cryptsetup) run(ctx context.Context, stdin, fd3 []byte, args ...string) ([]byte, error) {
	path := c.Path
	if path == "" {
		path = "cryptsetup"
	}
	argv := append([]string{path, "--disable-locks", "--disable-external-tokens"}, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "DM_DISABLE_UDEV=1")
	cmd.Stdin = bytes.NewReader(stdin)
	if fd3 != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		go func() {
			_, _ = w.Write(fd3) // a key is far below a pipe's buffer
			w.Close()
		}()
		cmd.ExtraFiles = []*os.File{r}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 2 {
			err = fmt.Errorf("%w (%w)", ErrWrongKey, err)
		}
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv[:3+min(len(args), 1)], " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// ErrWrongKey: no keyslot opens with the key given (cryptsetup's exit code 2).
var ErrWrongKey = errors.New("no keyslot opens with this key")

// Format makes dev a LUKS2 device (AES-XTS, 4 KiB sectors) whose keyslot slot opens with key. It
// destroys whatever dev held: the caller checks the device is the new array it just made.
func (c *Cryptsetup) Format(ctx context.Context, dev string, slot int, key []byte) error {
	args := append([]string{"luksFormat", "--type", "luks2", "--batch-mode", "--cipher", "aes-xts-plain64",
		"--key-size", "512", "--sector-size", "4096", "--key-slot", strconv.Itoa(slot), "--key-file", "-"}, kdf...)
	if _, err := c.run(ctx, key, nil, append(args, dev)...); err != nil {
		return fmt.Errorf("format %s: %w", dev, err)
	}
	return nil
}

// Open maps dev's plaintext as /dev/mapper/name.
func (c *Cryptsetup) Open(ctx context.Context, dev, name string, key []byte) error {
	if _, err := c.run(ctx, key, nil, "open", "--type", "luks2", "--disable-keyring", "--key-file", "-", dev, name); err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	return nil
}

// Check says whether key opens a keyslot of dev, without mapping anything (ErrWrongKey when not).
func (c *Cryptsetup) Check(ctx context.Context, dev string, key []byte) error {
	if _, err := c.run(ctx, key, nil, "open", "--type", "luks2", "--test-passphrase", "--key-file", "-", dev); err != nil {
		return fmt.Errorf("check a key of %s: %w", dev, err)
	}
	return nil
}

// Close removes the mapping name.
func (c *Cryptsetup) Close(ctx context.Context, name string) error {
	if _, err := c.run(ctx, nil, nil, "close", name); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	return nil
}

// Resize makes the mapping name take the whole of its device again (after the array grew).
func (c *Cryptsetup) Resize(ctx context.Context, name string, key []byte) error {
	if _, err := c.run(ctx, key, nil, "resize", "--key-file", "-", name); err != nil {
		return fmt.Errorf("resize %s: %w", name, err)
	}
	return nil
}

// AddKey puts newKey into keyslot slot, proving the right with key (a key of another slot).
func (c *Cryptsetup) AddKey(ctx context.Context, dev string, key []byte, slot int, newKey []byte) error {
	args := append([]string{"luksAddKey", "--batch-mode", "--key-file", "-", "--key-slot", strconv.Itoa(slot)}, kdf...)
	if _, err := c.run(ctx, key, newKey, append(args, dev, "/proc/self/fd/3")...); err != nil {
		return fmt.Errorf("add keyslot %d to %s: %w", slot, dev, err)
	}
	return nil
}

// KillSlot erases keyslot slot (its key opens nothing afterwards). It refuses to erase the last one
// (cryptsetup in batch mode would: the data would be gone for good).
func (c *Cryptsetup) KillSlot(ctx context.Context, dev string, slot int) error {
	slots, err := c.Slots(ctx, dev)
	if err != nil {
		return err
	}
	if len(slots) == 1 && slots[0] == slot {
		return fmt.Errorf("erase keyslot %d of %s: it is the last one", slot, dev)
	}
	if _, err := c.run(ctx, nil, nil, "luksKillSlot", "--batch-mode", dev, strconv.Itoa(slot)); err != nil {
		return fmt.Errorf("erase keyslot %d of %s: %w", slot, dev, err)
	}
	return nil
}

// Slots are the keyslots in use.
func (c *Cryptsetup) Slots(ctx context.Context, dev string) ([]int, error) {
	h, err := c.header(ctx, dev)
	if err != nil {
		return nil, err
	}
	var out []int
	for k := range h.Keyslots {
		n, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("header of %s: keyslot %q", dev, k)
		}
		out = append(out, n)
	}
	return out, nil
}

type header struct {
	Keyslots map[string]json.RawMessage `json:"keyslots"`
	Tokens   map[string]json.RawMessage `json:"tokens"`
}

// header reads the LUKS2 header's JSON metadata.
func (c *Cryptsetup) header(ctx context.Context, dev string) (header, error) {
	out, err := c.run(ctx, nil, nil, "luksDump", "--dump-json-metadata", dev)
	var h header
	if err == nil {
		err = json.Unmarshal(out, &h)
	}
	if err != nil {
		return header{}, fmt.Errorf("header of %s: %w", dev, err)
	}
	return h, nil
}

// Token reads token id of dev into v; found is false when there is none.
func (c *Cryptsetup) Token(ctx context.Context, dev string, id int, v any) (found bool, err error) {
	h, err := c.header(ctx, dev)
	if err != nil {
		return false, err
	}
	raw, ok := h.Tokens[strconv.Itoa(id)]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("token %d of %s: %w", id, dev, err)
	}
	return true, nil
}

// SetToken writes v as token id of dev, replacing the one there. v must marshal to an object with
// "type" and "keyslots" (LUKS2's rule for tokens). The header is written as one update, in both of its
// copies: a power cut leaves the old token or the new one.
func (c *Cryptsetup) SetToken(ctx context.Context, dev string, id int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := c.run(ctx, b, nil, "token", "import", "--token-id", strconv.Itoa(id), "--token-replace", dev); err != nil {
		return fmt.Errorf("write token %d of %s: %w", id, dev, err)
	}
	return nil
}

// Is reports whether dev starts with a LUKS header (either version; the caller checks it is ours).
func Is(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, fmt.Errorf("read header of %s: %w", dev, err)
	}
	defer f.Close()
	b := make([]byte, 6)
	if _, err := io.ReadFull(f, b); err != nil {
		return false, fmt.Errorf("read header of %s: %w", dev, err)
	}
	return string(b) == "LUKS\xba\xbe", nil
}
