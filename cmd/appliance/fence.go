package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lawbox/appliance/appliance/replica"
)

// drbdHelperPath is this binary, which the DRBD module runs for its events (replica.Replica sets it):
// "" when it cannot be named, and the documents are then replicated without fencing.
func drbdHelperPath() string {
	p, err := os.Executable()
	if err != nil {
		return ""
	}
	return p
}

// drbdEvent reports whether args are the DRBD module's: its program, the event, and the minor it
// concerns ("minor-0"), or the resource's name for the events of a connection (fence-peer).
func drbdEvent(args []string) bool {
	return len(args) == 3 && (args[1] == "fence-peer" || strings.HasPrefix(args[2], "minor-"))
}

// drbdHelper is the firmware as the DRBD module's program for its events. For fence-peer it asks the
// daemon, which answers once the partner's copy can no longer be taken for the newest, and exits with
// that answer; until then the module holds the documents' writes, and a daemon that does not answer
// (restarting) is asked again every second. Every other event needs nothing from the firmware.
func drbdHelper(args []string) int {
	if args[1] != "fence-peer" {
		return 0
	}
	for {
		code, err := replica.AskFence(replica.FenceSocket, args[2])
		if err == nil {
			return code
		}
		fmt.Fprintln(os.Stderr, "fence-peer:", err)
		time.Sleep(time.Second)
	}
}
