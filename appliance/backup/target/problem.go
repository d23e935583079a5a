package target

import (
	"errors"
	"net"
	"net/http"
	"syscall"

	"github.com/minio/minio-go/v7"
	"github.com/pkg/sftp"
)

// ErrRefused is a server that answered but did not let the unit in (SFTP: the account, password or key).
var ErrRefused = errors.New("the server refused the account")

// Problem says in a sentence what a target's failure means to the office and what to do: what the page
// shows. The error itself, with the server's own words, is for the log and the API's detail.
func Problem(err error) string {
	var ne net.Error
	var se *sftp.StatusError
	var me minio.ErrorResponse
	code, status := "", 0
	if errors.As(err, &me) { // wrapped on its way up: ToErrorResponse sees only an unwrapped one
		code, status = me.Code, me.StatusCode
	}
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrHostKey):
		return "The server presents another host key than the one saved: check that it is the office's server, then save its new key."
	case errors.Is(err, ErrRefused), code == "AccessDenied", code == "InvalidAccessKeyId", code == "SignatureDoesNotMatch":
		return "The server refuses the unit's credentials: check the user, the key and the secret or password."
	case code == "NoSuchBucket":
		return "The server has no such bucket: check its name, or create it."
	case errors.Is(err, syscall.ENOSPC), status == http.StatusInsufficientStorage, code == "InsufficientStorage", code == "XMinioStorageFull",
		code == "QuotaExceeded", code == "EntityTooLarge",
		errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxFailure:
		return "The target is full or refuses to store more: free room there, or choose another target."
	case errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxPermissionDenied:
		return "The server refuses to write in that folder: check the folder and the account's rights."
	case errors.As(err, &ne):
		return "The target cannot be reached: check its address and the office's internet connection."
	}
	return "The copy failed; the unit's log says why."
}
