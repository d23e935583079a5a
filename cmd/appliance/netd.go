package main

import (
	"context"
	"flag"
	"io"
	stdlog "log"
	"log/slog"
	"time"

	"github.com/lawbox/appliance/netcfg/dhcp"
	"github.com/lawbox/appliance/netcfg/static"
)

func runNetd(ctx context.Context, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("netd", flag.ContinueOnError)
	sys := fs.String("sys", "/sys", "sysfs root")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stdlog.SetOutput(io.Discard) // u-root's DHCP client dumps every packet; our own log says what matters
	skip := func() map[string]bool { return static.ReadMarker(static.MarkerFile) }
	return (&dhcp.Client{Log: log, SysRoot: *sys, Retry: 30 * time.Second, Skip: skip,
		Leased: static.SystemResolver.Leased}).Run(ctx)
}
