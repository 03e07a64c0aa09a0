"""Gene sets per task kind that need no LLM: a start for projects whose model cannot propose genes.

The Genetic Prompt paper names its genes for AG News (topic) and relation extraction; those sets say so (the
one-line descriptions are the studio's: the paper gives names only). The others are the studio's own defaults
and say that instead: no paper gives them. The library is versioned, so a
gene-set version made from it records which library it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from datagen_core.config import Gene, GeneSet
from datagen_core.errors import DatagenError
from datagen_core.proposals.genes import accept_genes
from datagen_core.store import Store

LIBRARY_VERSION = 1
PAPER = "Genetic Prompt paper"
STUDIO = "studio default"


@dataclass(frozen=True)
class LibrarySet:
    """One task kind's genes and where they come from."""

    kind: str
    title: str
    source: str
    genes: tuple[Gene, ...]

    def note(self) -> str:
        """What a gene-set version made from this set records as its origin."""
        return f"library v{LIBRARY_VERSION}: {self.kind} ({self.source})"


def _set(kind: str, title: str, source: str, *genes: tuple[str, str]) -> LibrarySet:
    return LibrarySet(kind, title, source, tuple(Gene(name=n, description=d) for n, d in genes))


LIBRARY: dict[str, LibrarySet] = {s.kind: s for s in (
    _set("sentiment", "Sentiment (reviews, opinions)", STUDIO,
         ("length", "number of words and sentences"),
         ("aspect", "what the opinion is about: price, service, plot, acting, quality"),
         ("intensity", "how strong the opinion is, from mild to extreme"),
         ("tone", "enthusiastic, sarcastic, disappointed or matter-of-fact"),
         ("writing style", "formal review, casual chat, slang, punctuation")),
    _set("topic", "Topic / news category", f"{PAPER}, AG News",
         ("length", "number of words and sentences in the article"),
         ("location", "where the news happens: country, city or region"),
         ("style", "writing style: wire report, analysis, opinion, press release"),
         ("subtopic", "the specific subject within the category: a sport, a market, a product")),
    _set("relation", "Relation extraction", f"{PAPER}, relation extraction",
         ("length", "number of words in the sentence"),
         ("voice", "active or passive voice"),
         ("sentence structure", "simple, compound or complex sentence; clauses around the entities"),
         ("interaction verb", "the verb that states how the two entities relate: inhibits, binds, increases"),
         ("modifier", "adverbs and adjectives that qualify the relation: strongly, partially, in vitro"),
         ("negation", "whether the relation is affirmed, negated or hedged"),
         ("entity proximity", "how many words separate the two entities")),
    _set("intent", "Intent (requests to an assistant or service)", STUDIO,
         ("length", "number of words"),
         ("phrasing", "a question, a command or a statement of need"),
         ("formality", "polite, casual or terse"),
         ("specificity", "how much detail is given: names, dates, amounts"),
         ("context", "how much background detail the user gives before the request")),
    _set("question", "Question type (what the answer is)", STUDIO,
         ("length", "number of words"),
         ("question form", "which question word opens it (what, who, where, how), yes/no or 'name the ...'"),
         ("domain", "the field it asks about: history, science, sport, geography"),
         ("named entities", "people, places or works mentioned in the question"),
         ("complexity", "one simple fact or several constraints in one question")),
    _set("spam", "Spam detection (SMS, e-mail)", STUDIO,
         ("length", "number of words"),
         ("tone", "casual, friendly, pushy or formal"),
         ("subtopic", "what the message is about: a prize, a meeting, a delivery, family news"),
         ("call to action", "what the reader is asked to do: reply, call, click a link, text a code"),
         ("urgency", "deadlines and pressure: 'now', 'today only', 'urgent'"),
         ("writing style", "abbreviations, punctuation, capitalisation")),
    _set("generic", "Any text classification task", STUDIO,
         ("length", "number of words and sentences"),
         ("subtopic", "what the text is specifically about within its label"),
         ("tone", "neutral, friendly, angry, humorous"),
         ("writing style", "formal or casual, vocabulary, punctuation"),
         ("audience", "who the text is written for")),
)}


def library_set(kind: str) -> LibrarySet:
    """The set for a task kind; an unknown kind is one line naming the known ones."""
    try:
        return LIBRARY[kind.strip().lower()]
    except KeyError:
        raise DatagenError(f"no gene set for {kind!r} in the library; kinds are {', '.join(LIBRARY)}") from None


#: GeneSet.source has no "library" value, so a library set is saved as the user's choice and its note
#: (`LibrarySet.note`) names the library version, the kind and the set's source.
LIBRARY_SOURCE = "library"


def use_library_set(store: Store, kind: str) -> GeneSet:
    """Save a library set as the project's new gene-set version (the current constraints are kept)."""
    chosen = library_set(kind)
    return accept_genes(store, chosen.genes, LIBRARY_SOURCE, chosen.note())
