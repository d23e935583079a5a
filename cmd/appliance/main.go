// Command appliance is the whole firmware in one binary. As PID 1 it boots the unit and supervises the
// services; the same binary, started by PID 1 with a subcommand, is each service:
//
//	appliance daemon   the state store and the web UI
//	appliance netd     DHCP on every wired port
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Set at build time by image/build.sh: the version, the build number (what "older" means for an update
// bundle) and the minisign public key update bundles must be signed with.
var (
	version   = "dev"
	build     = "0"
	updateKey = ""
)

func main() {
	if os.Getpid() == 1 {
		runInit() // never returns
	}
	if drbdEvent(os.Args) { // run by the DRBD module for one of its events
		os.Exit(drbdHelper(os.Args))
	}
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: appliance daemon|netd [flags]   (as PID 1: boots the unit)")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch os.Args[1] {
	case "daemon":
		err = runDaemon(ctx, log, os.Args[2:])
	case "netd":
		err = runNetd(ctx, log, os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		log.Error("exiting", "cmd", os.Args[1], "err", err)
		os.Exit(1)
	}
}
