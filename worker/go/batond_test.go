package baton

// An integration test: a real batond serving a worker built from this
// package (the test binary itself, run with GOBATON_TEST_ROLE=http).
// batond is $BATON_BIN/batond, or ../../bin/batond (make builds it); the
// test is skipped when it is missing.

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const roleEnv = "GOBATON_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "http":
		os.Exit(httpWorker())
	case "sigpipe":
		os.Exit(sigpipeWorker())
	}
	os.Exit(m.Run())
}

// sigpipeWorker opens the channel, then writes to stderr, a pipe nobody
// reads any more (as batond's, once batond died): it must live on.
func sigpipeWorker() int {
	if _, err := Listen(); err != nil {
		return 3
	}
	for i := 0; i < 3; i++ {
		if _, err := os.Stderr.WriteString("anyone there?\n"); err == nil {
			return 4
		}
	}
	os.Stdout.WriteString("alive\n")
	return 0
}

// Writing to a broken stderr pipe does not kill a worker (§5.6).
func TestBrokenStderrIsNotFatal(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sup, ch := os.NewFile(uintptr(fds[0]), "sup"), os.NewFile(uintptr(fds[1]), "channel")
	defer sup.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"=sigpipe", "BATON_FD=3")
	cmd.ExtraFiles = []*os.File{ch}
	cmd.Stderr = w
	out, err := cmd.Output()
	w.Close()
	ch.Close()
	if err != nil || string(out) != "alive\n" {
		t.Fatalf("%v, stdout %q", err, out)
	}
}

const testBody = "hello from package baton\n"

// httpWorker is the worker batond runs in the integration test: the
// pattern of the package documentation.
func httpWorker() int {
	log.SetFlags(0)
	log.SetPrefix(fmt.Sprintf("testworker[%d]: ", os.Getpid()))
	ln, err := Listen()
	if err != nil {
		log.Print(err)
		return 1
	}
	pid, gen := strconv.Itoa(os.Getpid()), os.Getenv("BATON_GENERATION")
	srv := &http.Server{
		Handler: CloseOnDrain(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("X-Baton-Pid", pid)
			rw.Header().Set("X-Baton-Generation", gen)
			io.WriteString(rw, testBody)
		})),
		IdleTimeout: 30 * time.Second,
	}
	if err := Ready(); err != nil {
		log.Print(err)
		return 1
	}
	srv.Serve(ln)
	log.Printf("draining: %d connections open", Active())
	if err := Wait(); err != nil {
		log.Print(err)
		return 1
	}
	log.Print("drained: exiting")
	return 0
}

type batond struct {
	t       *testing.T
	dir     string
	bin     string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed when batond has exited, err its status
	err     error
}

func startBatond(t *testing.T, workers int) *batond {
	t.Helper()
	bin := os.Getenv("BATON_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin")
	}
	bin, _ = filepath.Abs(bin)
	if _, err := os.Stat(filepath.Join(bin, "batond")); err != nil {
		t.Skipf("no batond in %s (run make at the top of the repository, or set BATON_BIN to the directory that holds batond): %v", bin, err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := &batond{t: t, dir: dir, bin: bin, logPath: filepath.Join(dir, "batond.log")}
	config := fmt.Sprintf(`[baton]
control = %s
log_level = info

[listener:v4]
address = tcp:127.0.0.1:0
program = web

[program:web]
command = '%s'
workers = %d
environment = %s=http
ready_timeout = 5s
drain_timeout = 10s
stop_timeout = 2s
backoff = 50ms
`, filepath.Join(dir, "ctl.sock"), exe, workers, roleEnv)
	cfg := filepath.Join(dir, "baton.ini")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(b.logPath)
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(filepath.Join(bin, "batond"), "-c", cfg)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	b.exited = make(chan struct{})
	go func() { b.err = b.cmd.Wait(); close(b.exited) }()
	t.Cleanup(b.kill)
	b.waitLog(`worker ready program=web slot=\d+ pid=\d+`, workers, 10*time.Second)
	return b
}

func (b *batond) log() string {
	data, _ := os.ReadFile(b.logPath)
	return string(data)
}

func (b *batond) waitLog(pattern string, count int, timeout time.Duration) [][]string {
	b.t.Helper()
	rx := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for {
		if m := rx.FindAllStringSubmatch(b.log(), -1); len(m) >= count {
			return m
		}
		select {
		case <-b.exited:
			b.t.Fatalf("batond exited (%v) before /%s/ x%d:\n%s", b.err, pattern, count, b.log())
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timeout waiting for /%s/ x%d; batond's log:\n%s", pattern, count, b.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *batond) addr() string {
	m := b.waitLog(`listening listener=v4 address=\S+ bound=(\S+)`, 1, 5*time.Second)
	return m[0][1]
}

func (b *batond) ctl(args ...string) string {
	b.t.Helper()
	cmd := exec.Command(filepath.Join(b.bin, "batonctl"), append([]string{"-s", filepath.Join(b.dir, "ctl.sock")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.t.Fatalf("batonctl %v: %v\n%s\nbatond's log:\n%s", args, err, out, b.log())
	}
	return string(out)
}

// stop sends SIGTERM and waits; it fails the test unless batond exits 0.
func (b *batond) stop() {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
		if b.err != nil {
			b.t.Fatalf("batond: %v\n%s", b.err, b.log())
		}
	case <-time.After(20 * time.Second):
		b.t.Fatalf("batond did not exit after SIGTERM:\n%s", b.log())
	}
}

// kill ends batond and the workers it started, by pid, if still running.
func (b *batond) kill() {
	select {
	case <-b.exited:
	default:
		b.cmd.Process.Kill()
		<-b.exited
	}
	log := b.log()
	exited := map[string]bool{}
	for _, m := range regexp.MustCompile(`worker exited program=\S+ slot=\d+ pid=(\d+)`).FindAllStringSubmatch(log, -1) {
		exited[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`started worker program=\S+ slot=\d+ pid=(\d+)`).FindAllStringSubmatch(log, -1) {
		if pid, _ := strconv.Atoi(m[1]); !exited[m[1]] && pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// readyPids returns the workers batond reported ready and not exited.
func (b *batond) readyPids() map[string]bool {
	log := b.log()
	pids := map[string]bool{}
	for _, m := range regexp.MustCompile(`worker ready program=web slot=\d+ pid=(\d+)`).FindAllStringSubmatch(log, -1) {
		pids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`worker exited program=web slot=\d+ pid=(\d+)`).FindAllStringSubmatch(log, -1) {
		delete(pids, m[1])
	}
	return pids
}

// get does one request on a new connection.
func get(addr string) (*http.Response, string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil, "", err
	}
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// Requests through batond; rolling upgrades under load lose nothing; a
// kept-alive connection to a drained worker is answered with
// "Connection: close" by that worker; batond's SIGTERM drains every
// worker, each exiting 0 with nothing lost.
func TestThroughBatond(t *testing.T) {
	b := startBatond(t, 2)
	addr := b.addr()
	first := b.readyPids()
	if len(first) != 2 {
		t.Fatal(first)
	}
	for i := 0; i < 10; i++ {
		resp, body, err := get(addr)
		if err != nil || resp.StatusCode != 200 || body != testBody ||
			!first[resp.Header.Get("X-Baton-Pid")] || resp.Header.Get("X-Baton-Generation") != "1" {
			t.Fatalf("%v %q %v", resp, body, err)
		}
	}

	// a kept-alive connection, idle across the upgrade
	kept, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	kept.SetDeadline(time.Now().Add(60 * time.Second))
	keptR := bufio.NewReader(kept)
	keptGet := func() *http.Response {
		t.Helper()
		io.WriteString(kept, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(keptR, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	r1 := keptGet()
	if r1.Close || r1.Header.Get("X-Baton-Generation") != "1" {
		t.Fatalf("%+v", r1)
	}

	// load: a new connection per request, across two upgrades
	var (
		mu     sync.Mutex
		ok     int
		errs   []string
		stop   = make(chan struct{})
		loaded sync.WaitGroup
	)
	for g := 0; g < 4; g++ {
		loaded.Add(1)
		go func() {
			defer loaded.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, body, err := get(addr)
				mu.Lock()
				if err != nil {
					errs = append(errs, err.Error())
				} else if resp.StatusCode != 200 || body != testBody {
					errs = append(errs, fmt.Sprintf("status %d body %q", resp.StatusCode, body))
				} else {
					ok++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	for gen := 2; gen <= 3; gen++ {
		if out := b.ctl("upgrade", "web"); !strings.Contains(out, fmt.Sprintf("web upgraded to generation %d", gen)) {
			t.Fatal(out)
		}
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	loaded.Wait()
	if len(errs) > 0 || ok < 100 {
		t.Fatalf("%d ok, %d errors: %v\n%s", ok, len(errs), errs[:min(len(errs), 5)], b.log())
	}
	t.Logf("2 upgrades under load: %d requests, 0 errors", ok)

	// the kept-alive connection: its next request is answered by the
	// drained worker, with Connection: close, then it is closed
	r2 := keptGet()
	if !r2.Close || r2.Header.Get("X-Baton-Pid") != r1.Header.Get("X-Baton-Pid") || r2.Header.Get("X-Baton-Generation") != "1" {
		t.Fatalf("after the drain: %+v", r2)
	}
	if _, err := keptR.ReadByte(); err != io.EOF {
		t.Fatalf("kept-alive connection not closed: %v", err)
	}
	for pid := range first { // drained: exit 0, nothing unacked, nothing lost
		b.waitLog(`worker exited program=web slot=\d+ pid=`+pid+` exit=0 state=\S+ unacked=0 active=0`, 1, 15*time.Second)
		if !strings.Contains(b.log(), "testworker["+pid+"]: drained: exiting") {
			t.Fatalf("worker %s did not say it drained:\n%s", pid, b.log())
		}
	}
	now := b.readyPids()
	resp, _, err := get(addr)
	if err != nil || !now[resp.Header.Get("X-Baton-Pid")] || resp.Header.Get("X-Baton-Generation") != "3" {
		t.Fatalf("%v %v %v", resp, err, now)
	}

	b.stop()
	for pid := range now {
		b.waitLog(`worker exited program=web slot=\d+ pid=`+pid+` exit=0 state=\S+ unacked=0 active=0`, 1, time.Second)
	}
	if strings.Contains(b.log(), "protocol error") {
		t.Fatalf("protocol error:\n%s", b.log())
	}
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}
