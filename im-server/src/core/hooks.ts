// The event bus modules hook into (Prosody style): handlers run by priority, highest first;
// a handler returning true has handled the event and stops the chain.
export type Handler<E> = (event: E) => boolean | void;

interface Entry { fn: Handler<never>; priority: number }

export class Hooks {
  private readonly map = new Map<string, Entry[]>();

  on<E>(name: string, fn: Handler<E>, priority = 0): void {
    const list = this.map.get(name) ?? [];
    list.push({ fn: fn as Handler<never>, priority });
    list.sort((a, b) => b.priority - a.priority);
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
