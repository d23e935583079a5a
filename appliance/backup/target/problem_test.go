package target

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
)

// What each kind of failure is called on the page: by type and code, never by the server's words.
func TestProblem(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("sftp://a@b/c: %w: it presented SHA256:x", ErrHostKey), "another host key"},
		{fmt.Errorf("sftp://a@b/c: %w: ssh: unable to authenticate", ErrRefused), "refuses the unit's credentials"},
		{fmt.Errorf("put x: %w", minio.ErrorResponse{Code: "SignatureDoesNotMatch", Message: "The request signature we calculated does not match"}), "refuses the unit's credentials"},
		{minio.ErrorResponse{Code: "NoSuchBucket"}, "no such bucket"},
		{minio.ErrorResponse{Code: "XMinioStorageFull"}, "full"},
		{fmt.Errorf("upload x: %w", minio.ErrorResponse{Code: "InsufficientStorage", StatusCode: 507, Message: "No space left on device."}), "full"}, // versitygw
		{fmt.Errorf("write: %w", syscall.ENOSPC), "full"},
		{fmt.Errorf("s3: %w", dial), "cannot be reached"},
		{&net.DNSError{Err: "no such host", Name: "backup.example"}, "cannot be reached"},
		{errors.New("something else"), "the unit's log says why"},
	} {
		if got := Problem(c.err); !strings.Contains(got, c.want) {
			t.Errorf("Problem(%v) = %q, want it to say %q", c.err, got, c.want)
		}
	}
	if Problem(nil) != "" {
		t.Error("no error, yet a problem")
	}
}
