package raid

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
)

// KernelSaid reports whether the kernel's log since boot (kmsg: "/dev/kmsg") holds a message containing
// text: what md says only there, such as "starting dirty degraded array with PPL".
func KernelSaid(kmsg, text string) (bool, error) {
	// A raw descriptor, not an os.File: Go would park a read of a non-blocking character device in its
	// poller until the kernel logs more, instead of returning EAGAIN at the end of the log.
	fd, err := syscall.Open(kmsg, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("kernel log %s: %w", kmsg, err)
	}
	defer syscall.Close(fd)
	buf := make([]byte, 8192) // one record per read
	for {
		n, err := syscall.Read(fd, buf)
		switch {
		case errors.Is(err, syscall.EAGAIN): // read to the end
			return false, nil
		case errors.Is(err, syscall.EPIPE): // records overwritten while reading: go on with the next
			continue
		case err != nil:
			return false, fmt.Errorf("kernel log: %w", err)
		case n <= 0:
			return false, nil
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
