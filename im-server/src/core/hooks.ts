// The event bus modules hook into (Prosody style). Handlers of an event run in named phases, in
// this order, and within a phase in the order they were added (module load order); a handler
// returning true has handled the event and stops the chain:
//   policy   decides whether the stanza may pass at all (blocking): a refusal here leaves no trace
//   observe  watches without changing anything that follows (entity caps)
//   archive  keeps a copy and stamps it (MAM: <stanza-id/>), before anyone sees the stanza
//   copy     sends copies to others (carbons), with what archive added
//   deliver  routes, delivers or stores (the default)
// Phases instead of numeric priorities: two modules can no longer tie and run in an order that
// depends on which file was loaded first.
//
// A handler may return a promise (it reads the database): the chain goes on when it settles, and
// fire() returns a promise. Handlers that return at once keep the chain synchronous, so stanzas
// that need no database keep their order and cost no extra turn of the event loop.
export type Awaitable<T> = T | Promise<T>;
export type Handler<E> = (event: E) => Awaitable<boolean | void>;

/** `fn(value)`, at once when `value` is ready, after it settles when it is a promise. */
export function after<T, R>(value: Awaitable<T>, fn: (v: T) => Awaitable<R>): Awaitable<R> {
  return value instanceof Promise ? value.then(fn) : fn(value);
}

export const PHASES = ['policy', 'observe', 'archive', 'copy', 'deliver'] as const;
export type Phase = typeof PHASES[number];

interface Entry { fn: Handler<never>; rank: number }
const RANK: Record<Phase, number> = Object.fromEntries(PHASES.map((p, i) => [p, i])) as Record<Phase, number>;

export class Hooks {
  private readonly map = new Map<string, Entry[]>();

  on<E>(name: string, fn: Handler<E>, phase: Phase = 'deliver'): void {
    const rank = RANK[phase];
    if (rank === undefined) throw new Error(`hook ${name}: unknown phase "${String(phase)}" (one of ${PHASES.join(', ')})`);
    const list = this.map.get(name) ?? [];
    // After every handler of the same or an earlier phase: stable, in load order within a phase.
    let i = list.length;
    while (i > 0 && list[i - 1]!.rank > rank) i--;
    list.splice(i, 0, { fn: fn as Handler<never>, rank });
    this.map.set(name, list);
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  /** Called with a notification's failure (see notify). */
  onError: (name: string, err: unknown) => void = () => {};

  /** Runs the handlers; true when one of them handled the event. */
  fire<E>(name: string, event: E): Awaitable<boolean> {
    const list = this.map.get(name);
    if (!list) return false;
    return run(list as Entry[], 0, event);
  }

  /** For events whose answer is needed at once (e.g. stream features): no handler may wait. */
  fireSync<E>(name: string, event: E): boolean {
    const r = this.fire(name, event);
    if (r instanceof Promise) throw new Error(`a handler of ${name} returned a promise; this event must be handled synchronously`);
    return r;
  }

  /** Fires an event nobody waits for (session-closed, account-removing...): failures are reported, never thrown. */
  notify<E>(name: string, event: E): void {
    try {
      const r = this.fire(name, event);
      if (r instanceof Promise) r.catch((err: unknown) => this.onError(name, err));
    } catch (err) {
      this.onError(name, err);
    }
  }
}

function run<E>(list: Entry[], from: number, event: E): Awaitable<boolean> {
  for (let i = from; i < list.length; i++) {
    const r = (list[i]!.fn as Handler<E>)(event);
    if (r === true) return true;
    if (r instanceof Promise) return r.then((done) => (done === true ? true : run(list, i + 1, event)));
  }
  return false;
}
