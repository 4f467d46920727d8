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
export type Handler<E> = (event: E) => boolean | void;

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

  /** Runs the handlers; true when one of them handled the event. */
  fire<E>(name: string, event: E): boolean {
    const list = this.map.get(name);
    if (!list) return false;
    for (const { fn } of list) if ((fn as Handler<E>)(event) === true) return true;
    return false;
  }
}
