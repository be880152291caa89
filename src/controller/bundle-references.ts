// Which binding objects reference which bundle objects, as the proxy-config controller
// wrote them (or, when a leadership term starts, as the watch shows them). A bundle is
// written before the first binding object that references it, and may go only once no
// binding object does: `use` is called before the writes, `settle` after them, so a
// bundle is never unreferenced while a reconcile is about to reference it.

export class BundleReferences {
  /** Bundle object name → the bindings that reference it. */
  readonly #users = new Map<string, Set<string>>();
  /** Binding key → the bundle objects it references. */
  readonly #of = new Map<string, ReadonlySet<string>>();

  /** `binding` is about to reference `names`: they count as used from now on, with what it referenced before. */
  use(binding: string, names: readonly string[]): void {
    const had = this.#of.get(binding) ?? new Set<string>();
    const now = new Set([...had, ...names]);
    for (const name of names) this.#usersOf(name).add(binding);
    this.#of.set(binding, now);
  }

  /**
   * `binding`'s object now references exactly `names` (none once it is removed). Returns
   * the bundles no binding references any more: they may be removed.
   */
  settle(binding: string, names: readonly string[]): string[] {
    const keep = new Set(names);
    const released: string[] = [];
    for (const name of this.#of.get(binding) ?? []) {
      if (keep.has(name)) continue;
      const users = this.#users.get(name);
      users?.delete(binding);
      if (!users || users.size === 0) {
        this.#users.delete(name);
        released.push(name);
      }
    }
    for (const name of keep) this.#usersOf(name).add(binding);
    if (keep.size === 0) this.#of.delete(binding);
    else this.#of.set(binding, keep);
    return released.sort();
  }

  /** The bindings that reference a bundle. */
  users(name: string): ReadonlySet<string> {
    return this.#users.get(name) ?? new Set();
  }

  isReferenced(name: string): boolean {
    return (this.#users.get(name)?.size ?? 0) > 0;
  }

  clear(): void {
    this.#users.clear();
    this.#of.clear();
  }

  #usersOf(name: string): Set<string> {
    let users = this.#users.get(name);
    if (!users) this.#users.set(name, (users = new Set()));
    return users;
  }
}
