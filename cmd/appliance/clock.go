package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// setClock sets the system clock, then the hardware clock (best effort: a box without one, or a QEMU
// RTC that refuses, keeps the system's), so that the next boot starts from the right time.
func setClock(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("set the clock: %w", err)
	}
	f, err := os.Open("/dev/rtc0")
	if err != nil {
		return nil
	}
	defer f.Close()
	u := t.UTC()
	rtc := &unix.RTCTime{Sec: int32(u.Second()), Min: int32(u.Minute()), Hour: int32(u.Hour()), Mday: int32(u.Day()), Mon: int32(u.Month()) - 1, Year: int32(u.Year()) - 1900}
	_ = unix.IoctlSetRTCTime(int(f.Fd()), rtc)
	return nil
}
