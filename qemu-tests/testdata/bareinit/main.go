// Command bareinit is the smallest Go PID 1: it says it is up and powers off. The boot benchmark compares
// the appliance's boot with this one on the same kernel.
package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func main() {
	fmt.Println("bare init up")
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
