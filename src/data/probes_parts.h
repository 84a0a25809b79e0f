// The parts of the probe generator (recur/probes.h): biographies and QA (probes_people.cpp), i-GSM word
// problems and primitives as text (probes_reasoning.cpp); probes.cpp checks the options and assembles them.
#pragma once
#include "recur/probes.h"

namespace recur::probes_detail {

// Every item (context + target) fits a byte-level model with max_seq_len 256: the QA templates and value lists are
// short enough by construction (the longest open-book item is at most 255 bytes), and i-GSM problems longer than
// this are skipped in both splits alike.
constexpr size_t kMaxItemBytes = 256;

// Test items and training documents of one generator.
struct ProbePart {
  std::vector<ProbeTrainText> train;
  std::vector<ProbeTask> tasks;
  std::vector<std::string> closed_book_test_people, open_book_test_people;
};

// Distinct full names the biographies can use (first names times last names).
int name_capacity();
// Biographies (train "bios"), worked closed-book QA for half the people (train "qa_closed"), worked open-book
// examples (train "qa_open") and the closed_book_qa and open_book_qa tasks.
ProbePart make_people_probes(const ProbeOptions& options);
// Solved i-GSM word problems (train "igsm") and the igsm task.
ProbePart make_igsm_probes(const ProbeOptions& options);
// Solved primitives (train "primitives") and the four primitives_<flavour>_d<depth> tasks.
ProbePart make_primitives_probes(const ProbeOptions& options);

}  // namespace recur::probes_detail
