// Claiming work one item ahead (the station's units, the labeling page's tasks and reviews).
//
// The item on screen is `current`; once its image is decoded the next one is claimed and its
// image decoded too (`next`), so finishing the current item swaps the next in at once. Items
// finished or skipped here are `passed` and excluded from later claims (the server may not have
// recorded a decision still on its way), as are the two held.
//
// While a claim is on its way nothing else moves on: advance() called again meanwhile does
// nothing (two quick key presses must not both wait for one claim, nor show it twice).

import { api, postOnLeave } from "./api.js";

export class ClaimAhead {
  // - claim(exclude): the claim call, resolving to the server's item or null when none waits;
  // - entry(body): the page's entry for a claimed item: at least {id, imageUrl};
  // - release(id): the URL that gives an item back;
  // - show(entry): put the entry (null: nothing to do) on screen;
  // - onError(error): a claim failed; onImageFailed(entry): the current item's image did not load;
  // - excludeLimit: how many passed ids a claim excludes (the claim APIs take at most 200);
  // - releaseOnLeave: give the held items back when the page goes away (claims are held for a
  //   while on the server).
  constructor({ claim, entry, release, show, onError, onImageFailed, excludeLimit = 100, releaseOnLeave = false }) {
    Object.assign(this, { claimCall: claim, entryOf: entry, releaseUrl: release, show, onError, onImageFailed, excludeLimit });
    this.current = null;
    this.next = null;
    this.claimingNext = null; // the claim on its way, a promise
    this.advancing = false;
    this.generation = 0; // counts putBack(): an advance on its way then leaves the screen alone
    this.passed = [];
    if (releaseOnLeave) {
      window.addEventListener("pagehide", () => {
        for (const entry of [this.current, this.next]) if (entry) postOnLeave(this.releaseUrl(entry.id));
      });
    }
  }

  // Whether the next item is claimed and decoded (or none is waiting), with no claim on its way.
  get nextReady() {
    return !this.claimingNext && (!this.next || this.next.loaded);
  }

  heldIds() {
    const ids = this.passed.slice(-this.excludeLimit);
    if (this.current) ids.push(this.current.id);
    if (this.next) ids.push(this.next.id);
    return ids;
  }

  preload(body) {
    const entry = this.entryOf(body);
    const img = new Image();
    img.src = entry.imageUrl;
    entry.img = img;
    entry.loaded = false;
    entry.ready = img.decode().then(
      () => (entry.loaded = true),
      () => false
    );
    return entry;
  }

  claimNext() {
    if (this.next || this.claimingNext) return this.claimingNext;
    this.claimingNext = this.claimCall(this.heldIds())
      .then((body) => {
        const entry = body ? this.preload(body) : null;
        // An undo put an item back as `next` meanwhile: this one is not needed now.
        if (entry && this.next) this.release(entry);
        else this.next = entry;
        return entry;
      })
      .catch((error) => this.onError(error))
      .finally(() => {
        this.claimingNext = null;
      });
    return this.claimingNext;
  }

  // Show the next item (claimed ahead, else claimed now), then claim the one after it.
  async advance() {
    if (this.advancing) return;
    this.advancing = true;
    let entry;
    try {
      for (;;) {
        const generation = this.generation;
        entry = this.next;
        this.next = null;
        if (!entry) {
          await this.claimNext();
          entry = this.next;
          this.next = null;
        }
        if (generation === this.generation) break;
        // An item was put back on screen while the claim was on its way: this one comes after it
        if (entry && this.next) this.release(entry);
        else if (entry) this.next = entry;
        if (this.current) return;
        // ... unless that one is finished already too: then on to the next.
      }
    } finally {
      this.advancing = false;
    }
    this.current = entry;
    this.show(entry);
    if (entry) {
      const loaded = await entry.ready;
      if (!loaded && this.current === entry && this.onImageFailed) this.onImageFailed(entry);
      this.claimNext();
    }
  }

  // The item is done here: never claimed again by this page; on to the next. It stays on screen
  // until the next is shown, but is no longer `current` (a second key press finds nothing).
  finish(entry) {
    this.passed.push(entry.id);
    if (this.current === entry) this.current = null;
    return this.advance();
  }

  // Give the current item back for someone else and move on: the release on its way (a
  // promise, settled once the server has it); false when there was none (or a claim is on its
  // way).
  skip() {
    const entry = this.current;
    if (!entry || this.advancing) return false;
    const released = this.release(entry);
    this.finish(entry);
    return released;
  }

  // Show `entry` again now (an undone decision); the current item comes right after it, and the
  // one claimed ahead goes back.
  putBack(entry) {
    if (this.current) {
      if (this.next) this.release(this.next);
      this.next = this.current;
    }
    this.current = entry;
    this.generation += 1;
    this.show(entry);
  }

  release(entry) {
    return api("POST", this.releaseUrl(entry.id)).catch(() => {});
  }
}
