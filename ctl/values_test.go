package ctl

import "testing"

func TestOnOff(t *testing.T) {
	for _, v := range []bool{true, false} {
		if got, err := ParseOnOff(OnOff(v)); err != nil || got != v {
			t.Errorf("ParseOnOff(OnOff(%v)) = %v, %v", v, got, err)
		}
	}
	for _, s := range []string{"", "On", "1", "yes"} {
		if _, err := ParseOnOff(s); err == nil {
			t.Errorf("ParseOnOff(%q) accepted", s)
		}
	}
}
