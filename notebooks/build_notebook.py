#!/usr/bin/env python3
"""Write notebooks/taskdemo.ipynb from the cells kept below, and run it.

    python notebooks/build_notebook.py             # the cells, no outputs
    python notebooks/build_notebook.py --execute   # ... run at DELAY = 5
                                                   # and store the outputs

The notebook is a demo whose outputs are the point, so it is committed with
the outputs of a real run at ``DELAY = 5`` (the original notebook's
figures); ``--execute`` takes a few minutes.  Edit the cells here, not in
the .ipynb, and regenerate.

``--execute`` runs the notebook top to bottom, with nbclient, on a fresh
ipykernel of the interpreter running this script (a kernelspec written to a
temporary directory for ``sys.executable``, whatever kernels are installed),
with the notebooks directory as its working directory.  Two things differ
from a plain ``jupyter nbconvert --execute``:

- Output that a cell's task writes after that cell has finished (a worker
  thread still running while the next cell executes) is kept in that cell,
  as JupyterLab shows it; nbclient alone drops it.
- ``--delay SECONDS`` overrides ``DELAY`` the way papermill does: a cell
  tagged ``injected-parameters`` with ``DELAY = SECONDS`` is inserted after
  the cell tagged ``parameters``.  Use it for quick checks (with
  ``--output``); the committed notebook has no injected cell.

``tests/test_notebook.py`` imports ``build``, ``inject_parameters`` and
``execute`` from here and runs the committed notebook with a short delay.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, List, Optional

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "taskdemo.ipynb"
KERNEL_NAME = "taskdemo-build"

# The notebook's cells, in order: (kind, source, tags), kind being
# "markdown" or "code".
# Cells that come from the original notebook keep its code and words; the
# text says where taskdemo changes something.
CELLS: List[tuple] = []


def md(source: str, *tags: str) -> None:
    CELLS.append(("markdown", source.strip("\n"), tags))


def code(source: str, *tags: str) -> None:
    CELLS.append(("code", source.strip("\n"), tags))


# --------------------------------------------------------------------------
# The notebook.

md("""
# Threads, asyncio and a C thread pool, side by side

This notebook reruns a small notebook that compares threads with `asyncio`,
cell by cell, then runs the same work on taskdemo's thread pool, which is
written in C, and draws what every thread and task did, and when.

The outputs below are from a real run with `DELAY = 5`, the original
notebook's figures; `python notebooks/build_notebook.py --execute`
regenerates them.
""")

md("""
Every run below lasts `DELAY` seconds (the original notebook wrote `5`
instead). Tests run the notebook with a shorter delay by adding a cell right
after this one.
""")

code("""
DELAY = 5
""", "parameters")

md("""
Thread counts are part of the demo, so first stop two libraries from
starting threads of their own halfway through it, which would be counted as
if the demo had started them: numpy's BLAS library (matplotlib imports
numpy, for the charts) starts one thread per core, and the kernel hands any
output over 64 kB (a chart can be) to a helper thread of pyzmq, which
starts three threads on first use.
""")

code("""
import os

os.environ['OPENBLAS_NUM_THREADS'] = '1'  # before numpy is imported
os.environ['OMP_NUM_THREADS'] = '1'
get_ipython().kernel.session.copy_threshold = 2**62  # copy outputs, however large
""")

md("""
## The original notebook

The cells in this part are the original notebook's, in its order and words.
Where taskdemo changes something, the text says so. Below each set, a chart
shows its runs: one row per thread (or asyncio task), one bar per run.
""")

code("""
import sys
print(sys.version)
""")

md("""
For the sake of entertaining everyone, this is a basic stopwatch for this
demo.

The original notebook defined it here, in Python, with `time()` and
`threading.active_count()`. taskdemo now provides it, with the same two
lines of output: `from taskdemo import stopwatch, additional_thread_count`.
It times on a monotonic clock and counts the process's OS threads, both in
C, so threads started from C count too. `additional_thread_count()` is the
number of threads beyond those the kernel had when taskdemo was imported,
and each stopwatch keeps its seconds in `.elapsed`, which the summary at the
end uses.
""")

code("""
from time import sleep, time

import taskdemo
from taskdemo import stopwatch, additional_thread_count
""")

md("""
To draw the charts, we record when each run starts and ends, and on which
thread or asyncio task, in a `taskdemo.timeline.Recorder`: the line
`with recorder.span(id):` added to the runs below does that and nothing
else. (taskdemo's pool, later on, records its tasks itself, in C.)
""")

code("""
import matplotlib.pyplot as plt
from taskdemo.timeline import Recorder, plot

recorder = Recorder()

def show_timelines(*panels):
  \"\"\"Draw (title, records) panels one above the other, on one time axis.\"\"\"
  rows = [len({(r.worker, r.thread) for r in records}) for _, records in panels]
  fig, axes = plt.subplots(
    len(panels), 1, sharex=True, squeeze=False,
    figsize=(9, 0.9 * len(panels) + 0.45 * sum(rows)),
    gridspec_kw={'height_ratios': [n + 1 for n in rows]})
  for ax, (title, records) in zip(axes[:, 0], panels):
    plot(records, ax=ax, title=title)
    ax.set_xlabel('')
  axes[-1, 0].set_xlabel('seconds since the set started')
  # Each panel's time 0 is its set's first submission; share the longest.
  end = max(max(r.ended for r in records) - min(r.submitted for r in records)
            for _, records in panels)
  axes[0, 0].set_xlim(0, end * 1.02)
  fig.tight_layout()
  plt.show()
""")

md("""
Now, let's define a CPU-bound task.

(It mostly sleeps, in fact, so threads can take turns while it waits; Set #8
at the end is truly CPU-bound.)
""")

code("""
def run_in_sync(id: str, delay: float):
  with recorder.span(id):
    starting_time = time()
    while time() - starting_time < delay:
      sys.stdout.write(f'{id}')
      sleep(0.5)
      sys.stdout.write(f'{id}')
    sys.stdout.write(f'[{id}:stopped:{additional_thread_count()}t] ')
    return id
""")

md("""
Suppose we have three runs.
""")

code("""
runs = ['+', '-', '#']
""")

md("""
Now, let's make three runs without multitasking.
""")

code("""
recorder.clear()  # this set's timeline starts here
with stopwatch('Set #1') as set_1:
  results = [
    run_in_sync(id, DELAY)
    for id in runs
  ]
  print(f'\\nresults = {results}')
""")

code("""
set_1_timeline = recorder.timeline()
show_timelines(('Set #1: three runs, one after another, in the main thread', set_1_timeline))
""")

md("""
Well, this is a bit too long. Let's use multithreading to speed things up.
> For this demo, we use `ThreadPoolExecutor` for simplicity.

This is the standard library's pool, as in the original notebook.
""")

code("""
from concurrent.futures import as_completed, Future
from concurrent.futures.thread import ThreadPoolExecutor
from typing import Any, List, Dict

recorder.clear()  # this set's timeline starts here
with stopwatch('Set #2') as set_2, ThreadPoolExecutor(max_workers=2) as pool:
  futures = [
    pool.submit(run_in_sync, id, DELAY)
    for id in runs
  ]

  results = [
    f.result()
    for f in as_completed(futures)
  ]

  print(f'\\nresults = {results}')
""")

code("""
set_2_timeline = recorder.timeline()
show_timelines(('Set #2: the standard library pool, two threads', set_2_timeline))
""")

md("""
Now, let's try with `asyncio` but keep using `run_in_sync`.
""")

code("""
import asyncio
from multiprocessing import Process

async def run_in_async(id: str, delay: float):
  with recorder.span(id):
    starting_time = time()
    while time() - starting_time < delay:
      sys.stdout.write(f'{id}')
      await asyncio.sleep(0.5)
      sys.stdout.write(f'{id}')
    sys.stdout.write(f'[{id}:stopped:{additional_thread_count()}t] ')
    return id

async def demo_with_just_await(runs: List[str]):
  results = []
  for id in runs:
    results.append(await run_in_async(id, DELAY))
    # ↑ As you can see, while "await" will automatically create a task from a
    #   returning coroutine, "await" also block until the awaited task finishes.

  print(f'\\nresults = {results}')

async def demo_with_explicit_task_creation(runs: List[str]):
  tasks = []
  for id in runs:
    coroutine = run_in_async(id, DELAY)  # ← This is just to get a coroutine for scheduling.
    task = asyncio.create_task(coroutine)  # ← This will schedule the coroutine right away.
    tasks.append(task)

  results = []
  for t in tasks:
    results.append(await t)

  print(f'\\nresults = {results}')
""")

md("""
Normally, we can just invoke `asyncio.run(demo())`. However, Jupyter's
kernel runs its own event loop in this thread, and `asyncio.run` refuses to
start inside a running loop. The original notebook ran the two sets in a
child process (that cell comes further down, for the record). In a notebook
cell we can simply `await` the coroutine: IPython runs the cell on the
kernel's event loop, in this thread, so the runs report `0t`, as in the
original: the coroutines start no thread.
""")

code("""
recorder.clear()  # this set's timeline starts here
with stopwatch('Set #3') as set_3:
  await demo_with_just_await(runs)
set_3_timeline = recorder.timeline()
""")

code("""
recorder.clear()  # this set's timeline starts here
with stopwatch('Set #4') as set_4:
  await demo_with_explicit_task_creation(runs)
set_4_timeline = recorder.timeline()
""")

code("""
show_timelines(
  ('Set #3: one asyncio task awaits the three runs one after another', set_3_timeline),
  ('Set #4: three asyncio tasks, one event loop, one thread', set_4_timeline))
""")

md("""
Top-level `await` works in a notebook, not in a script or a function.
`taskdemo.run(coro)` runs a coroutine to its end from anywhere: with
`asyncio.run` where no loop runs in this thread, and otherwise (as here) on a
helper thread, in a copy of this cell's context, while this thread waits. That
helper thread is the `1t` these runs report.
""")

code("""
with stopwatch('Set #4 (taskdemo.run)'):
  taskdemo.run(demo_with_explicit_task_creation(runs))
""")

md("""
The original notebook's way, for the record: the same two sets in a child
process, where no event loop runs yet (and no extra thread: `0t`). A child
process's output reaches the notebook over a new connection for each write,
so a few pieces of it may arrive out of order.
""")

code("""
from multiprocessing import get_all_start_methods, get_context

def run_in_process():
  with stopwatch('Set #3'):
    asyncio.run(demo_with_just_await(runs))

  with stopwatch('Set #4'):
    asyncio.run(demo_with_explicit_task_creation(runs))

# Normally, we can just invoke asyncio.run(demo()). However, Jupyter's kernel
# seems to be using asyncio. So, we use a different thread to bypass the limit.
# Python 3.14 made "forkserver" the default start method on Linux, whose child
# cannot find run_in_process (it lives in this kernel, not in a module), so we
# ask for "fork" wherever it exists: the child starts as a copy of this kernel.
if 'fork' in get_all_start_methods():
  Process = get_context('fork').Process
p = Process(target=run_in_process)
p.start()
p.join()
""")

md("""
The difference between **multithreading (`threading`)** and **cooperative
multitasking (`asyncio`)** can be summarized like this.

| | Multithreading (`threading`) | Cooperative Multitasking (`asyncio`) |
| --- | --- | --- |
| Method declaration | `def foo()` | `async def foo()` |
| Method Invocation: `foo()` | Whatever is given in `return` | Coroutine of `foo()` |
| Unit of Work | Thread | Task |
| Scheduler | Operating System | Event Loop |
""")

md("""
## The same runs on taskdemo's C thread pool

`taskdemo.ThreadPoolExecutor` is a drop-in for the standard library's: same
`submit`, `as_completed`, `with` block. Its workers are threads started from
C (pthreads), and `additional_thread_count()` counts them from C too. Set #5
is Set #2 again on it, with two workers: two runs side by side, the third
waits for a free worker, so about 2 × `DELAY`, and each run reports `2t`.
""")

code("""
with stopwatch('Set #5') as set_5, taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
  futures = [
    pool.submit(run_in_sync, id, DELAY)
    for id in runs
  ]

  results = [
    f.result()
    for f in as_completed(futures)
  ]

  print(f'\\nresults = {results}')

set_5_timeline = pool.timeline()
""")

md("""
With a third worker, nothing waits: about 1 × `DELAY`, and `3t`.
""")

code("""
with stopwatch('Set #6') as set_6, taskdemo.ThreadPoolExecutor(max_workers=3) as pool:
  futures = [
    pool.submit(run_in_sync, id, DELAY)
    for id in runs
  ]

  results = [
    f.result()
    for f in as_completed(futures)
  ]

  print(f'\\nresults = {results}')

set_6_timeline = pool.timeline()
""")

md("""
The charts of the two pools side by side. The C pool's charts come from
`pool.timeline()`, which the pool records in C for every task (submitted,
started, ended, worker); the faint bar before a run is the time it waited in
the queue for a free worker. The C pool labels each task with its
function's name.
""")

code("""
show_timelines(
  ('Set #2: the standard library pool, two threads', set_2_timeline),
  ('Set #5: taskdemo C pool, two workers (pool.timeline())', set_5_timeline),
  ('Set #6: taskdemo C pool, three workers (pool.timeline())', set_6_timeline))
""")

md("""
## Output goes to the cell that submitted the task

Jupyter shows what a thread writes in the cell whose request is in that
thread's *parent header*, which ipykernel 7 keeps in a `ContextVar`. A
thread of the standard library's pool starts with an empty context, so
ipykernel 7 sends its output to whichever cell is running when it writes.
(ipykernel 6 sends it to the cell that started the thread, which is just as
wrong once later cells reuse the pool.) taskdemo's pool runs each task in a
copy of the submitter's `contextvars` context (as `asyncio.to_thread` does;
the standard library's pool does not), so the output stays in the cell that
submitted the task.

This cell submits one task to each pool; both wait until the next cell has
started, then write.
""")

code("""
import threading

next_cell_started = threading.Event()

def write_when_the_next_cell_runs(id: str):
  next_cell_started.wait()
  sys.stdout.write(f'[{id}: written while the next cell runs] ')
  return id

stdlib_pool = ThreadPoolExecutor(max_workers=1)
c_pool = taskdemo.ThreadPoolExecutor(max_workers=1)
late = [
  stdlib_pool.submit(write_when_the_next_cell_runs, 'standard library pool'),
  c_pool.submit(write_when_the_next_cell_runs, 'taskdemo pool'),
]
print('Submitted; this cell ends before the tasks write.')
""")

md("""
The task of taskdemo's pool wrote into the cell above, after it had ended;
the standard library pool's task wrote into this one (with ipykernel 7).
""")

code("""
next_cell_started.set()
print(f'\\nresults = {[f.result() for f in late]}')
stdlib_pool.shutdown()
c_pool.shutdown()
""")

md("""
## asyncio driving the C pool

An event loop can hand blocking work to a thread pool and keep running its
own coroutines meanwhile: `loop.run_in_executor(pool, run_in_sync, ...)`
returns an awaitable, so one `gather` can mix runs on the C pool's workers
with native `run_in_async` coroutines. Here `+` and `-` run on two workers
while `#` runs as a coroutine on the event loop: all three at once, about
1 × `DELAY`. The runs report `2t`: the two workers.
""")

code("""
async def demo_with_the_c_pool(runs: List[str]):
  loop = asyncio.get_running_loop()
  with taskdemo.ThreadPoolExecutor(max_workers=2) as pool:
    results = await asyncio.gather(
      loop.run_in_executor(pool, run_in_sync, runs[0], DELAY),
      loop.run_in_executor(pool, run_in_sync, runs[1], DELAY),
      run_in_async(runs[2], DELAY),
    )
  print(f'\\nresults = {results}')
  return pool

recorder.clear()  # this set's timeline starts here
with stopwatch('Set #7') as set_7:
  pool = await demo_with_the_c_pool(runs)
set_7_timeline = pool.timeline()
""")

md("""
The C pool's own records show its two workers; the recorder, which sees
every run from Python, adds the asyncio task that ran `#` next to them.
""")

code("""
show_timelines(
  ('Set #7: the C pool, as the pool recorded it (pool.timeline())', set_7_timeline),
  ('Set #7: every run, as Python saw it: two C workers and one asyncio task (Recorder)',
   recorder.timeline()))
""")

md("""
## Truly CPU-bound work, and the GIL

`run_in_sync` mostly sleeps, and a sleeping thread lets the others run. Busy
work is different. Python code runs only while its thread holds the *global
interpreter lock* (GIL), one thread at a time, so two threads of pure-Python
busy work take turns on one core: together they take as long as one thread
running both, one after the other. Code in C that releases the GIL does not
have to wait for it: `taskdemo.native.spin(seconds)` keeps a core busy in C
without the GIL until its thread has used `seconds` of CPU time, so two of
them on two workers run truly in parallel, one per core (on one core they
would take twice as long).

First, how much pure-Python work one thread does in a second on this
machine, at its fastest:
""")

code("""
def count_down(n: int):
  while n > 0:
    n -= 1

slices = []  # seconds per 100,000 steps, for a second
starting_time = time()
while time() - starting_time < 1:
  slice_start = time()
  count_down(100_000)
  slices.append(time() - slice_start)
work_per_second = 100_000 / min(slices)
print(f'{work_per_second:,.0f} steps of count_down per second')
""")

md("""
Each run does `DELAY` seconds of that work, in ten slices, writing its id
around each slice. Set #8 runs two of them on the C pool, first with one
worker, then with two: both take about 2 × `DELAY`. With two threads, each
waits for the GIL while the other runs.
""")

code("""
def run_cpu_bound(id: str, delay: float):
  for _ in range(10):
    sys.stdout.write(f'{id}')
    count_down(int(work_per_second * delay / 10))
    sys.stdout.write(f'{id}')
  sys.stdout.write(f'[{id}:stopped:{additional_thread_count()}t] ')
  return id

def busy_set(name: str, run, workers: int):
  \"\"\"Time `run` for '+' and '-' on a C pool of `workers` workers.\"\"\"
  with stopwatch(name) as watch, taskdemo.ThreadPoolExecutor(max_workers=workers) as pool:
    futures = [pool.submit(run, id, DELAY) for id in runs[:2]]
    results = [f.result() for f in as_completed(futures)]
    print(f'\\nresults = {results}')
  return watch, pool.timeline()

set_8_one, set_8_one_timeline = busy_set('Set #8 (1 thread)', run_cpu_bound, 1)
set_8, set_8_timeline = busy_set('Set #8 (2 threads)', run_cpu_bound, 2)
""")

md("""
Set #9 is the same with the busy work in C, which releases the GIL: about
2 × `DELAY` on one worker, and 1 × `DELAY` on two (on a machine with two
cores or more).
""")

code("""
def run_native_spin(id: str, delay: float):
  for _ in range(10):
    sys.stdout.write(f'{id}')
    taskdemo.native.spin(delay / 10)  # busy in C, without the GIL
    sys.stdout.write(f'{id}')
  sys.stdout.write(f'[{id}:stopped:{additional_thread_count()}t] ')
  return id

set_9_one, set_9_one_timeline = busy_set('Set #9 (1 thread)', run_native_spin, 1)
set_9, set_9_timeline = busy_set('Set #9 (2 threads)', run_native_spin, 2)
""")

md("""
With the GIL, two threads take turns: in Set #8 both bars of the two-thread
run span the whole set, as long as the one-thread run. Without it, in Set
#9, they run side by side, in half the time.
""")

code("""
show_timelines(
  ('Set #8 (1 thread): pure-Python busy work, one after another', set_8_one_timeline),
  ('Set #8 (2 threads): pure-Python busy work, taking turns with the GIL', set_8_timeline),
  ('Set #9 (1 thread): taskdemo.native.spin, one after another', set_9_one_timeline),
  ('Set #9 (2 threads): taskdemo.native.spin, side by side, no GIL', set_9_timeline))
""")

md("""
## All the sets

Every set's `stopwatch(...).elapsed`, next to what the original notebook
measured (or, for the new sets, what to expect) in multiples of `DELAY`.
""")

code("""
from IPython.display import Markdown

sets = [
  (set_1, 3, 'three runs, one after another'),
  (set_2, 2, 'standard library pool, 2 threads'),
  (set_3, 3, 'asyncio, one await after another'),
  (set_4, 1, 'asyncio, three tasks'),
  (set_5, 2, 'C pool, 2 workers'),
  (set_6, 1, 'C pool, 3 workers'),
  (set_7, 1, 'asyncio driving the C pool'),
  (set_8_one, 2, 'pure-Python busy work, C pool'),
  (set_8, 2, 'pure-Python busy work, C pool'),
  (set_9_one, 2, 'native.spin, C pool'),
  (set_9, 1, 'native.spin, C pool'),
]

table = ['| Set | What runs | Elapsed | × DELAY | Expected × DELAY |',
         '| --- | --- | ---: | ---: | ---: |']
for watch, expected, what in sets:
  table.append(f'| {watch.name} | {what} | {watch.elapsed:.3f}s '
               f'| {watch.elapsed / DELAY:.2f} | {expected} |')
Markdown('\\n'.join(table))
""")

code("""
fig, ax = plt.subplots(figsize=(9, 5))
names = [f'{watch.name}: {what}' for watch, _, what in sets]
ax.barh(names, [watch.elapsed for watch, _, _ in sets], color='tab:blue', label='elapsed')
ax.scatter([expected * DELAY for _, expected, _ in sets], names,
           color='black', marker='|', s=300, label='expected', zorder=3)
ax.invert_yaxis()
ax.set_xlabel('seconds')
ax.set_title(f'Elapsed time of each set (DELAY = {DELAY})', loc='left', fontsize='medium')
ax.legend(loc='lower right')
fig.tight_layout()
plt.show()
""")

md("""
And the original notebook's comparison, with a column for taskdemo's C
thread pool.

| | Multithreading (`threading`) | Cooperative Multitasking (`asyncio`) | C thread pool (`taskdemo`) |
| --- | --- | --- | --- |
| Method declaration | `def foo()` | `async def foo()` | `def foo()`, or a C function such as `taskdemo.native.spin` |
| Method Invocation: `foo()` | Whatever is given in `return` | Coroutine of `foo()` | `pool.submit(foo)` returns a `Future` of what `foo()` returns |
| Unit of Work | Thread | Task | Task, run by a worker thread (a pthread started from C) |
| Scheduler | Operating System | Event Loop | Operating System; a queue in C hands tasks to idle workers |
| Python code in parallel | No: one thread at a time holds the GIL | No: one thread | No: it needs the GIL too |
| C code without the GIL in parallel | Yes | No: it blocks the loop | Yes (Set #9) |
| `contextvars` of the caller | Not seen by the pool's threads | Copied into each task | Copied into each task |
""")


# --------------------------------------------------------------------------
# Building and running.

def build() -> Any:
    """Return the notebook (an nbformat NotebookNode), without outputs."""
    import nbformat
    from nbformat import v4

    cells = []
    for index, (kind, source, tags) in enumerate(CELLS):
        make = v4.new_code_cell if kind == "code" else v4.new_markdown_cell
        cell = make(source)
        # Stable ids keep the diff of a regenerated notebook small.
        cell["id"] = f"cell-{index:02d}"
        if tags:
            cell["metadata"]["tags"] = list(tags)
        cells.append(cell)
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def inject_parameters(nb: Any, **parameters: Any) -> Any:
    """Return a copy of ``nb`` with ``parameters`` set, papermill-style.

    A code cell tagged ``injected-parameters`` (``NAME = repr(value)`` per
    parameter) is inserted right after the cell tagged ``parameters``, so
    the notebook's defaults stay visible and are overridden before any
    other cell runs.
    """
    from nbformat import v4

    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        if "parameters" in cell.metadata.get("tags", []):
            break
    else:
        raise ValueError("the notebook has no cell tagged 'parameters'")
    source = "# Parameters injected by build_notebook.py\n" + "\n".join(
        f"{name} = {value!r}" for name, value in parameters.items())
    injected = v4.new_code_cell(source)
    injected["id"] = "injected-parameters"
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    return nb


def _taskdemo_path() -> Optional[str]:
    """The directory holding the taskdemo this interpreter imports."""
    spec = importlib.util.find_spec("taskdemo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(list(spec.submodule_search_locations)[0]).parent)


def _client_class() -> type:
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionComplete
    from nbclient.util import ensure_async

    class LateOutputClient(NotebookClient):
        """nbclient that keeps a cell's late output in that cell.

        nbclient reads the kernel's IOPub messages only for the cell it is
        running and drops the others.  A task that a cell submitted may
        write after that cell has ended, with the cell's parent header;
        JupyterLab shows such output in its own cell, and so does this
        client: it remembers every executed cell by its request's msg_id.
        """

        kernel_dir: str = ""

        def create_kernel_manager(self) -> Any:
            spec_manager = KernelSpecManager(kernel_dirs=[self.kernel_dir])
            self.km = self.kernel_manager_class(
                kernel_name=KERNEL_NAME, kernel_spec_manager=spec_manager,
                config=self.config)
            return self.km

        async def _async_poll_output_msg(self, parent_msg_id: str, cell: Any,
                                         cell_index: int) -> None:
            assert self.kc is not None
            cells = self.__dict__.setdefault("_cells_by_msg_id", {})
            cells[parent_msg_id] = (cell, cell_index)
            while True:
                msg = await ensure_async(
                    self.kc.iopub_channel.get_msg(timeout=None))
                msg_id = msg["parent_header"].get("msg_id")
                if msg_id == parent_msg_id:
                    try:
                        self.process_message(msg, cell, cell_index)
                    except CellExecutionComplete:
                        return
                elif msg_id in cells and msg["msg_type"] in (
                        "stream", "display_data", "error"):
                    self.process_message(msg, *cells[msg_id])

    return LateOutputClient


def _merge_streams(outputs: List[Any]) -> List[Any]:
    """Join consecutive stream outputs of the same name, as Jupyter shows
    them (late output arrives as a stream output of its own)."""
    merged: List[Any] = []
    for out in outputs:
        if (merged and out.get("output_type") == "stream"
                and merged[-1].get("output_type") == "stream"
                and merged[-1].get("name") == out.get("name")):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def execute(nb: Any, *, timeout: int = 600, startup_timeout: int = 60) -> Any:
    """Run ``nb`` top to bottom on a fresh ipykernel of this interpreter.

    Returns the executed copy (``nb`` is left as it is).  The kernel runs
    ``sys.executable`` with the notebooks directory as working directory
    and imports the same taskdemo as this interpreter.  ``timeout`` bounds
    each cell, in seconds.  Raises nbclient's ``CellExecutionError`` if a
    cell raises.
    """
    from ipykernel.kernelspec import write_kernel_spec

    nb = copy.deepcopy(nb)
    env = dict(os.environ)
    paths = [p for p in (_taskdemo_path(), env.get("PYTHONPATH")) if p]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    # Inline PNG charts, whatever backend the caller's environment selects.
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    with tempfile.TemporaryDirectory(prefix="taskdemo-kernel-") as tmp:
        write_kernel_spec(Path(tmp, KERNEL_NAME))
        client = _client_class()(
            nb, timeout=timeout, startup_timeout=startup_timeout,
            kernel_name=KERNEL_NAME, record_timing=False,
            resources={"metadata": {"path": str(HERE)}})
        client.kernel_dir = tmp
        client.execute(env=env)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
    nb.metadata["kernelspec"] = build().metadata["kernelspec"]
    return nb


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python notebooks/build_notebook.py",
        description="Write notebooks/taskdemo.ipynb from the cells in this "
                    "script; with --execute, run it and store the outputs.")
    parser.add_argument("--execute", action="store_true",
                        help="run the notebook on a fresh kernel of this "
                             "interpreter and store the outputs (a few "
                             "minutes at DELAY = 5)")
    parser.add_argument("--delay", type=float, default=None,
                        help="override DELAY (papermill-style injected cell); "
                             "for quick checks, not for the committed file")
    parser.add_argument("--output", type=Path, default=NOTEBOOK,
                        help=f"where to write (default: {NOTEBOOK})")
    args = parser.parse_args(argv)
    if args.delay is not None and not args.delay > 0:
        parser.error("--delay must be a number of seconds > 0")

    import nbformat

    nb = build()
    if args.delay is not None:
        nb = inject_parameters(nb, DELAY=args.delay)
    if args.execute:
        nb = execute(nb)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(args.output))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
