package netcut

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
)

// TestInstructions checks the program body without root: "r0 = 0; exit",
// encoded as the kernel will see it.
func TestInstructions(t *testing.T) {
	insns := Instructions()
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xb7, 0x00, 0, 0, 0, 0, 0, 0, // BPF_ALU64|BPF_MOV|BPF_K r0 = 0
		0x95, 0x00, 0, 0, 0, 0, 0, 0, // BPF_JMP|BPF_EXIT
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("program bytes\n got %x\nwant %x\n%v", buf.Bytes(), want, insns)
	}
}

// TestHooks checks the program specs: types, attach types, names.
func TestHooks(t *testing.T) {
	want := map[string]ebpf.AttachType{
		"connect4": ebpf.AttachCGroupInet4Connect,
		"connect6": ebpf.AttachCGroupInet6Connect,
		"sendmsg4": ebpf.AttachCGroupUDP4Sendmsg,
		"sendmsg6": ebpf.AttachCGroupUDP6Sendmsg,
		"egress":   ebpf.AttachCGroupInetEgress,
		"ingress":  ebpf.AttachCGroupInetIngress,
	}
	if len(hooks) != len(want) {
		t.Fatalf("%d hooks, want %d", len(hooks), len(want))
	}
	for _, h := range hooks {
		if want[h.name] != h.attach {
			t.Errorf("%s: attach %v, want %v", h.name, h.attach, want[h.name])
		}
		s := spec(h)
		if len(s.Name) > 15 {
			t.Errorf("%s: name %q longer than the kernel keeps", h.name, s.Name)
		}
		switch h.attach {
		case ebpf.AttachCGroupInetEgress, ebpf.AttachCGroupInetIngress:
			if s.Type != ebpf.CGroupSKB {
				t.Errorf("%s: type %v", h.name, s.Type)
			}
		default:
			if s.Type != ebpf.CGroupSockAddr || s.AttachType != h.attach {
				t.Errorf("%s: type %v expected attach %v", h.name, s.Type, s.AttachType)
			}
		}
	}
}
