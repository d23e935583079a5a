package raid

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// KernelSaid reports whether the kernel's log since boot (kmsg: "/dev/kmsg") holds a message containing
// text: what md says only there, such as "starting dirty degraded array with PPL".
func KernelSaid(kmsg, text string) (bool, error) {
	f, err := os.OpenFile(kmsg, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false, fmt.Errorf("kernel log: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 8192) // one record per read
	for {
		n, err := f.Read(buf)
		switch {
		case errors.Is(err, syscall.EAGAIN): // read to the end
			return false, nil
		case errors.Is(err, syscall.EPIPE): // records overwritten while reading: go on with the next
			continue
		case err != nil:
			return false, fmt.Errorf("kernel log: %w", err)
		}
		if recordHas(buf[:n], text) {
			return true, nil
		}
	}
}

// recordHas reports whether a kmsg record ("6,1234,5678901,-;message\n continuation...") says text.
func recordHas(rec []byte, text string) bool {
	_, msg, ok := bytes.Cut(rec, []byte(";"))
	if !ok {
		return false
	}
	msg, _, _ = bytes.Cut(msg, []byte("\n"))
	return bytes.Contains(msg, []byte(text))
}
