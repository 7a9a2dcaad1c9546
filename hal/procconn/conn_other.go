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

// SetFilter fails: see Listen.
func (c *Conn) SetFilter(on bool) error { return errors.ErrUnsupported }

// SetFilterAll does nothing: there is no Conn.
func SetFilterAll(on bool) error { return nil }

// Close does nothing.
func (c *Conn) Close() error { return nil }

func now() (time.Time, time.Duration) { return time.Now(), 0 }
