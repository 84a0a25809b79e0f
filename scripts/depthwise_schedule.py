#!/usr/bin/env python3
"""Layer calls per generated token of MoR's serving schedules (docs/mor.md, "Where the serving time goes").

A model of BatchLoop (src/infer/batch_loop.cpp) in which every call costs the same whatever its rows: `slots`
sequences decode at once; each token's recursion depth is 1, 2 or 3 with probability 1/3 each (expert choice at
capacities 1, 2/3, 1/3); one block pass is `block_layers` layer calls, the prelude and the coda one call each.
Synchronous depth runs prelude, three passes on the shrinking batch and coda per token of every sequence; depth-wise
batching enters waiting tokens, runs one pass over every token in the stack and lets finished tokens leave, each
iteration; gathered exits hold finished tokens until `gather` of them wait or the stack is empty.

Usage: python3 scripts/depthwise_schedule.py [--slots 16] [--iterations 20000]
"""
import argparse
import random


def depthwise_calls(slots, gather, iterations, block_layers, rng):
    """(layer calls per generated token, prelude, block passes, coda calls per token) for depth-wise batching."""
    state, left = ["wait"] * slots, [0] * slots
    prelude = passes = coda = tokens = 0
    for _ in range(iterations):
        waiting = [i for i in range(slots) if state[i] == "wait"]
        if waiting:
            prelude += 1
            for i in waiting:
                state[i], left[i] = "in", rng.choice([1, 2, 3])
        active = [i for i in range(slots) if state[i] == "in"]
        if active:
            passes += 1
            for i in active:
                left[i] -= 1
                if left[i] == 0:
                    state[i] = "done"
        done = [i for i in range(slots) if state[i] == "done"]
        in_stack = any(state[i] == "in" for i in range(slots))
        if done and (len(done) >= gather or not in_stack):
            coda += 1
            tokens += len(done)
            for i in done:
                state[i] = "wait"
    return (prelude + block_layers * passes + coda) / tokens, prelude / tokens, passes / tokens, coda / tokens


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--iterations", type=int, default=20000)
    p.add_argument("--block_layers", type=int, default=2, help="layers per block pass (Middle-Cycle of 8: 2)")
    args = p.parse_args()
    synchronous = (2 + 3 * args.block_layers) / args.slots
    print(f"synchronous depth: {synchronous * args.slots:.2f} layer calls per {args.slots} generated tokens")
    for gather in range(1, args.slots + 1):
        calls, prelude, passes, coda = depthwise_calls(args.slots, gather, args.iterations, args.block_layers,
                                                       random.Random(0))
        label = "depth-wise" if gather == 1 else f"gathered exits at {gather}"
        print(f"{label}: {calls * args.slots:.2f} layer calls per {args.slots} tokens (prelude {prelude * args.slots:.2f}, "
              f"block passes {passes * args.slots:.2f}, coda {coda * args.slots:.2f}); "
              f"synchronous / this = {synchronous / calls:.3f}")


if __name__ == "__main__":
    main()
