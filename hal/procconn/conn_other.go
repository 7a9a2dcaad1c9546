//go:build !linux

package procconn

import (
	"errors"
	"time"
)

// Conn is a subscription to the proc connector (Linux only).
type Conn struct{}

// Listen fails: the proc connector is a Linux interface.
func Listen() (*Conn, error) { return nil, errors.ErrUnsupported }

// Read fails: see Listen.
func (c *Conn) Read() ([]Event, error) { return nil, errors.ErrUnsupported }

// Close does nothing.
func (c *Conn) Close() error { return nil }

func now() (time.Time, time.Duration) { return time.Now(), 0 }
