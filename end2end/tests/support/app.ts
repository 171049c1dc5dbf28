import { spawn, type ChildProcess } from 'node:child_process';
import { appBinary, appEnv, appWorkDir } from './env';

/** A separately started instance of the release binary, for tests that need their own. */
export class AppProcess {
  private output = '';
  private constructor(readonly child: ChildProcess, readonly url: string) {
    child.stdout?.on('data', (d) => { this.output += d; });
    child.stderr?.on('data', (d) => { this.output += d; });
  }

  static start(port: number, overrides: Record<string, string | undefined> = {}, dataDir?: string): AppProcess {
    return AppProcess.launch(appBinary(), [], appWorkDir(), port, appEnv(port, overrides, dataDir));
  }

  /** `command args…` (the binary, or a wrapper that execs it) serving on `port`. */
  static launch(command: string, args: string[], cwd: string, port: number, env: Record<string, string>): AppProcess {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    return new AppProcess(child, `http://localhost:${port}`);
  }

  /** Resolves once the app answers; throws with its output if it exits first. */
  async ready(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`app exited with ${this.child.exitCode}:\n${this.output}`);
      try {
        if ((await fetch(`${this.url}/`)).ok) return;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`app not ready after ${timeoutMs} ms:\n${this.output}`);
  }

  /** Waits for the process to exit by itself; returns its exit code and output. */
  async exited(timeoutMs = 10_000): Promise<{ code: number | null; output: string }> {
    if (this.child.exitCode === null) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`app did not exit:\n${this.output}`)), timeoutMs);
        this.child.once('exit', () => { clearTimeout(timer); resolve(); });
      });
    }
    return { code: this.child.exitCode, output: this.output };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const done = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await done;
  }

  get logs(): string {
    return this.output;
  }
}
