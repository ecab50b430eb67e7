/**
 * Daemon state machine, as upstream service/src/daemon.rs (reported by `GET /api/v1/daemon`):
 *   INIT    --Mount/Takeover--> READY    --Start--> RUNNING
 *   RUNNING --Stop--> READY
 *   INIT/READY --Stop/Exit/Umount--> STOPPED
 */
import { NydusError } from '../util/errors.js';

export type DaemonState = 'INIT' | 'READY' | 'RUNNING' | 'STOPPED';
export type DaemonEvent = 'Mount' | 'Takeover' | 'Start' | 'Stop' | 'Exit' | 'Umount';

const kTransitions: Record<DaemonState, Partial<Record<DaemonEvent, DaemonState>>> = {
  INIT: { Mount: 'READY', Takeover: 'READY', Stop: 'STOPPED', Exit: 'STOPPED' },
  READY: { Start: 'RUNNING', Stop: 'STOPPED', Exit: 'STOPPED', Umount: 'STOPPED' },
  RUNNING: { Stop: 'READY' },
  STOPPED: {},
};

export class DaemonStateMachine {
  private _state: DaemonState = 'INIT';
  private readonly _listeners: ((from: DaemonState, to: DaemonState, event: DaemonEvent) => void)[] = [];

  get state(): DaemonState {
    return this._state;
  }

  can(event: DaemonEvent): boolean {
    return kTransitions[this._state][event] !== undefined;
  }

  /** Applies `event`; throws ERR_DAEMON_STATE when the current state does not accept it. */
  fire(event: DaemonEvent): DaemonState {
    const to = kTransitions[this._state][event];
    if (to === undefined) throw new NydusError('ERR_DAEMON_STATE', `daemon event ${event} is not valid in state ${this._state}`);
    const from = this._state;
    this._state = to;
    for (const l of this._listeners) l(from, to, event);
    return to;
  }

  onChange(listener: (from: DaemonState, to: DaemonState, event: DaemonEvent) => void): void {
    this._listeners.push(listener);
  }
}
