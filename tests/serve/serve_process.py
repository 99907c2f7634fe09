"""`oss4 serve` as a child process for the server tests: started on a free port (--port 0, the port read from its
log), stderr kept, stopped with SIGTERM and required to exit 0. test_openai_client.py and test_robust.py add their
own request helpers on top."""
import re
import subprocess
import threading


class ServeProcess:
    def __init__(self, oss4, model, *extra):
        self.proc = subprocess.Popen([oss4, "serve", "-m", model, "--port", "0", "-q", *extra], stderr=subprocess.PIPE, text=True)
        self.port = None
        self.log = []
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"on http://[0-9.]+:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120) or self.port is None:
            raise RuntimeError("server did not start: " + "".join(self.log))
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not stop on SIGTERM")
        assert rc == 0, f"server exited with {rc}: " + "".join(self.log[-20:])
