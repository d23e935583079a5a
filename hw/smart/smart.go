// Package smart reads disk health natively: ATA/SATA SMART attributes with their thresholds and NVMe's
// health log, through github.com/anatol/smart.go, and starts self-tests with its own pass-through commands
// (smart.go only reads). A disk that speaks neither (virtio) is reported unsupported, not as an error.
package smart

import (
	"errors"
	"fmt"
	"sort"

	gosmart "github.com/anatol/smart.go"
)

// Reading is one poll of a disk.
type Reading struct {
	Supported    bool        `json:"supported"`
	Reason       string      `json:"reason,omitempty"`   // why not supported
	Protocol     string      `json:"protocol,omitempty"` // "ata" or "nvme"
	Model        string      `json:"model,omitempty"`    // ATA identify data (NVMe: see hw/disk)
	Serial       string      `json:"serial,omitempty"`
	Firmware     string      `json:"firmware,omitempty"`
	TemperatureC int         `json:"temperature_c"`
	PowerOnHours uint64      `json:"power_on_hours"`
	Attributes   []Attribute `json:"attributes,omitempty"` // ATA
	NVMe         *NVMeHealth `json:"nvme,omitempty"`
}

// Attribute is one ATA SMART attribute.
type Attribute struct {
	ID        uint8  `json:"id"`
	Name      string `json:"name"`
	Value     uint8  `json:"value"` // normalised, 1..253: lower is worse
	Worst     uint8  `json:"worst"`
	Threshold uint8  `json:"threshold"` // the value at or below which the drive calls itself failing; 0: never
	Raw       uint64 `json:"raw"`
	Prefail   bool   `json:"prefail"`
}

// NVMeHealth is the NVMe SMART / health information log (log page 02h).
type NVMeHealth struct {
	CriticalWarning uint8  `json:"critical_warning"` // bits: 0 spare, 1 temperature, 2 reliability, 3 read-only, 4 backup
	AvailableSpare  uint8  `json:"available_spare"`  // percent
	SpareThreshold  uint8  `json:"spare_threshold"`
	PercentUsed     uint8  `json:"percent_used"`
	MediaErrors     uint64 `json:"media_errors"`
	UnsafeShutdowns uint64 `json:"unsafe_shutdowns"`
	PowerCycles     uint64 `json:"power_cycles"`
}

// ErrUnsupported means the disk has no SMART the appliance can read.
var ErrUnsupported = errors.New("no SMART support")

// Read polls the disk at path ("/dev/sda", "/dev/nvme0n1"). transport is hw/disk's ("virtio", "sata", ...):
// virtio disks are not even tried.
func Read(path, transport string) (Reading, error) {
	if transport == "virtio" {
		return Reading{Reason: "virtual disk without SMART"}, nil
	}
	if transport == "nvme" {
		d, err := gosmart.OpenNVMe(path)
		if err != nil {
			return Reading{}, fmt.Errorf("open %s: %w", path, err)
		}
		defer d.Close()
		// No Identify here: smart.go's also identifies every possible namespace (256 on QEMU), which made a
		// poll cost 180 ms instead of 20; model and serial come from sysfs (hw/disk).
		log, err := d.ReadSMART()
		if err != nil {
			return Reading{}, fmt.Errorf("read SMART log of %s: %w", path, err)
		}
		return FromNVMe(log), nil
	}
	d, err := gosmart.OpenSata(path)
	if err != nil {
		return Reading{Reason: fmt.Sprintf("does not answer ATA SMART commands (%v)", err)}, nil
	}
	defer d.Close()
	id, err := d.Identify()
	if err != nil {
		return Reading{}, fmt.Errorf("identify %s: %w", path, err)
	}
	data, err := d.ReadSMARTData()
	if err != nil {
		return Reading{}, fmt.Errorf("read SMART data of %s: %w", path, err)
	}
	th, err := d.ReadSMARTThresholds()
	if err != nil {
		return Reading{}, fmt.Errorf("read SMART thresholds of %s: %w", path, err)
	}
	r := FromATA(data, th)
	r.Model, r.Serial, r.Firmware = id.ModelNumber(), id.SerialNumber(), id.FirmwareRevision()
	return r, nil
}

// FromNVMe converts smart.go's NVMe health log.
func FromNVMe(l *gosmart.NvmeSMARTLog) Reading {
	return Reading{
		Supported:    true,
		Protocol:     "nvme",
		TemperatureC: int(l.Temperature) - 273, // the log is in kelvin
		PowerOnHours: l.PowerOnHours.Val[0],
		NVMe: &NVMeHealth{
			CriticalWarning: l.CritWarning,
			AvailableSpare:  l.AvailSpare,
			SpareThreshold:  l.SpareThresh,
			PercentUsed:     l.PercentUsed,
			MediaErrors:     l.MediaErrors.Val[0],
			UnsafeShutdowns: l.UnsafeShutdowns.Val[0],
			PowerCycles:     l.PowerCycles.Val[0],
		},
	}
}

// FromATA converts smart.go's ATA SMART data and thresholds pages.
func FromATA(p *gosmart.AtaSmartPage, th *gosmart.AtaSmartThresholdsPage) Reading {
	r := Reading{Supported: true, Protocol: "ata"}
	for id, a := range p.Attrs {
		if id == 0 {
			continue
		}
		at := Attribute{ID: id, Name: a.Name, Value: a.Current, Worst: a.Worst, Raw: a.ValueRaw,
			Prefail: a.Flags&gosmart.AtaAttributeFlagPrefailure != 0}
		if th != nil {
			at.Threshold = th.Thresholds[id]
		}
		switch id {
		case 194, 190: // temperature: the low byte of the raw value
			if t, _, _, _, err := a.ParseAsTemperature(); err == nil && (r.TemperatureC == 0 || id == 194) {
				r.TemperatureC = t
			}
		case 9:
			r.PowerOnHours = a.ValueRaw & 0xffffffff
		}
		r.Attributes = append(r.Attributes, at)
	}
	sort.Slice(r.Attributes, func(i, j int) bool { return r.Attributes[i].ID < r.Attributes[j].ID })
	return r
}
