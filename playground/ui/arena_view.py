"""What the Arena tab shows, as text and HTML: the blind round, its status, the reveal, the help. No gradio here.

Nothing built before the vote names a host: the round's HTML holds only letters, random image tokens and the
round's random id; the status counts images, never names them.
"""

from __future__ import annotations

import html

from playground.arena import MAX_SIDES
from playground.arena_round import Round, Side
from playground.leaderboard import LEVEL, MIN_VOTES
from playground.models import model_info
from playground.ui.format import BLOCKED, INFO, notes_markdown

IMAGE_PATH = "/arena/image/"  # + token; served beside the UI by playground.ui.arena_routes
CHOICE_WORDS = {"tie": "a tie", "both_bad": "both bad"}

# Scoped to the round's gr.HTML (its css_template): every image in one column width, so all show at one size.
CSS = """
.arena-grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; max-width: 1100px; }
figure { margin: 0; }
figcaption { font-weight: 700; font-size: 1.2em; margin-bottom: 4px; }
img { width: 100%; height: auto; max-height: 62vh; object-fit: contain; display: block; border-radius: 6px; }
@media (max-width: 700px) { .arena-grid { grid-template-columns: minmax(0, 1fr); } }
"""

# Runs in the browser: once every image of the round shown has loaded, tell the server (the 'seen' event).
SEEN_JS = """
const report = () => {
  const box = element.querySelector('[data-round]');
  if (!box) return;
  const round = box.dataset.round;
  const images = Array.from(box.querySelectorAll('img'));
  const check = () => {
    if (element.dataset.seen === round) return;
    if (images.length && images.every((img) => img.complete && img.naturalWidth > 0)) {
      element.dataset.seen = round;
      trigger('seen', { round: round });
    }
  };
  images.forEach((img) => img.addEventListener('load', check));
  check();
};
watch('value', report);
report();
"""


def round_html(game: Round) -> str:
    """The blind images: letters and neutral URLs only, every image the same size."""
    figures = "".join(
        f'<figure><figcaption>{side.letter}</figcaption><img src="{IMAGE_PATH}{side.token}" alt="image {side.letter}">'
        "</figure>"
        for side in game.sides
    )
    return f'<div class="arena-grid" data-round="{html.escape(game.round_id)}">{figures}</div>'


def making_text(game: Round | None, total: int) -> str:
    ready = game.ready if game is not None else 0
    return (
        f"⏳ Making {total} images from the same prompt and seed ({ready} of {total} ready). "
        "The hosts stay hidden until you vote."
    )


def shown_text(game: Round) -> str:
    if len(game.sides) == 2:
        return "Look at both images, then vote: is **A** or **B** better, a tie, or both bad?"
    return f"Look at all {len(game.sides)} images, then pick the best one."


def seen_text(game: Round) -> str:
    return f"{INFO} All images are in. " + shown_text(game)


def voted_text(game: Round) -> str:
    choice = game.choice or ""
    said = CHOICE_WORDS.get(choice) or (f"{choice} is better" if len(game.sides) == 2 else f"{choice} is best")
    tie = " The images were byte-identical, so it counts as a tie." if game.identical and len(game.sides) == 2 else ""
    return f"✔ Vote recorded: {said}.{tie} The hosts are below; **Next round** keeps your prompt."


def refused_text(reason: str) -> str:
    return f"{BLOCKED} {reason}"


def reveal_markdown(game: Round) -> str:
    """After the vote (or when a side failed): who made which image, how long it took, what it cost."""
    lines = [_reveal_line(game, side) for side in game.sides]
    notes = [note for side in game.sides for note in (side.event.notes if side.event else ())]
    seed = f"Seed {game.request.seed} was sent to every host that takes one." if game.request.seed is not None else ""
    return "\n".join(lines) + "\n\n" + seed + ("\n\n" + notes_markdown(notes) if notes else "")


def _reveal_line(game: Round, side: Side) -> str:
    """'- **A**: KIE AI, FLUX.1 Kontext [pro], 3.1 s, $0.025 ← your vote' (a list wraps well on a phone)."""
    event = side.event
    result = event.result if event is not None else None
    facts = [f"**{side.label}**", model_info(side.target[1]).name]
    if result is not None:
        cost = f"${result.cost_usd:.3f}" if result.cost_usd is not None else "cost unknown"
        facts += [f"{result.latency_s:.1f} s", cost]
    mark = " ← your vote" if game.choice == side.letter else ""
    if side.failure:
        mark = f" — failed: {side.failure}"
    return f"- **{side.letter}**: {', '.join(facts)}{mark}"


HELP = f"""
**Blind rounds.** The arena sends your prompt to two hosts (or up to {MAX_SIDES}) that can all take it: by default
the *same model on different hosts*, or any provider x model. Every host gets identical parameters and one
shared seed (where it takes a seed; a text-to-image round asks for 1:1 unless you choose a ratio, since hosts'
default sizes differ). The images are shown as A, B, ... in random order, only once all are ready, as PNG copies
of one size with no metadata and neutral addresses. Names, latencies and costs appear after your vote.

**Votes.** One vote per round; every image must have loaded in your browser first. If a side failed there is
no vote, and the round says why. Two byte-identical images count as a tie whatever you click. On a shared
page each visitor's votes are limited per minute. With 3 or 4 images you pick the best, and the pick is
recorded as one pairwise win over each other image (N-1 votes; nothing is recorded between the others).

**Ratings.** Bradley–Terry, fitted by maximum likelihood (with a weak ridge prior so that an unbeaten host
stays finite); a tie and "both bad" count half a win for each side (not Davidson's tie model). Shown on the
Elo scale around 1000 (the mean of the established targets), with {LEVEL:.0%} bootstrap intervals from 1,000
resamples of the votes. **Rank** as LMArena ranks: 1 + the number of targets whose interval lies wholly above
this one (its lower bound above this one's upper bound); equal ranks are ordered by rating; targets never
compared, even through others, are not ranked against each other. Targets with fewer than {MIN_VOTES} votes
are *provisional* and get no rank. Latency (median of successful jobs), success rate and
price come from the whole history of that host and model.
"""
