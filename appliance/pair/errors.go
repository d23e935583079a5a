package pair

import "errors"

// Errors of manual switchover.
var (
	ErrPeerActive  = errors.New("the other unit is active: make it stand down first")
	ErrPeerUnknown = errors.New("the other unit cannot be reached: it may still be serving; confirm to force")
)
