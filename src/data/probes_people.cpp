// Synthetic biographies for the QA probes (docs/lm.md, "Generated probes"): people with six attributes, each
// written in several paraphrases (a template per attribute, sentences in a random order, one per line), worked
// "Q: ...\nA: ..." examples, and the closed-book and open-book test items. tests/probes_check.py holds its own
// copy of the templates below to re-derive every answer from the text.
#include <algorithm>
#include <string>

#include "probes_parts.h"
#include "recur/rng.h"
#include "tasks/task_common.h"

namespace recur::probes_detail {

namespace {

const std::vector<std::string> kFirstNames = {
    "Ada",   "Alan",  "Alice", "Amir",  "Anna",  "Arjun", "Bea",   "Boris", "Carla", "Chen",  "Clara", "Dara",
    "David", "Elena", "Emil",  "Erin",  "Felix", "Fiona", "Gita",  "Hana",  "Hugo",  "Ines",  "Ivan",  "Jade",
    "Jonas", "Kai",   "Kira",  "Lars",  "Lena",  "Leo",   "Lucia", "Mara",  "Milo",  "Nadia", "Nico",  "Nora",
    "Omar",  "Olga",  "Paul",  "Petra", "Quinn", "Rosa",  "Ravi",  "Sara",  "Tomas", "Uma",   "Vera",  "Yuki"};
// No last name is a prefix of another, so a full name never occurs inside a longer one.
const std::vector<std::string> kLastNames = {
    "Abbott",  "Baker",    "Barros", "Castillo", "Dalton", "Diaz",   "Eriksen",  "Ferrand", "Fischer",   "Garcia",
    "Hale",    "Horvat",   "Ibarra", "Jensen",   "Kato",   "Keller", "Kowalski", "Larsen",  "Lindqvist", "Moreau",
    "Murphy",  "Nakamura", "Novak",  "Okafor",   "Olsen",  "Patel",  "Perez",    "Quinlan", "Rossi",     "Sato",
    "Schmidt", "Silva",    "Tanaka", "Torres",   "Ueda",   "Varga",  "Vogel",    "Walsh",   "Weber",     "Xu",
    "Yilmaz",  "Young",    "Zhang",  "Ziegler",  "Brandt", "Costa",  "Duval",    "Moss"};

const std::vector<std::string> kMonths = {"January", "February", "March",     "April",   "May",      "June",
                                          "July",    "August",   "September", "October", "November", "December"};
const std::vector<std::string> kCities = {"Oslo",  "Lima",   "Rome",   "Cairo",  "Delhi",  "Paris", "Quito",
                                          "Seoul", "Tokyo",  "Dakar",  "Hanoi",  "Lagos",  "Porto", "Sofia",
                                          "Perth", "Boston", "Denver", "Madrid", "Vienna", "Zurich"};
const std::vector<std::string> kUniversities = {"MIT",       "Yale",      "Oxford", "Stanford", "Harvard", "Caltech",
                                                "Princeton", "Cornell",   "Duke",   "Rice",     "Brown",   "Columbia",
                                                "Berkeley",  "Cambridge", "Purdue", "Tufts"};
const std::vector<std::string> kFields = {
    "biology", "chemistry", "physics",     "history",    "law",         "music",        "economics", "geology",
    "nursing", "medicine",  "linguistics", "philosophy", "mathematics", "architecture", "sociology", "astronomy"};
// Each employer is in one city: the work city follows from the employer, as in the paper's biographies.
const std::vector<std::pair<std::string, std::string>> kEmployers = {
    {"Nexa", "Boston"},    {"Orbix", "Seoul"},    {"Veltra", "Madrid"},  {"Quantic", "Tokyo"},
    {"Lumenor", "Paris"},  {"Corvid", "Denver"},  {"Halcyon", "Vienna"}, {"Tessel", "Oslo"},
    {"Brightway", "Lima"}, {"Kestrel", "Zurich"}, {"Mosaico", "Rome"},   {"Pinecrest", "Perth"},
    {"Arborix", "Delhi"},  {"Zentro", "Cairo"},   {"Fjordia", "Porto"},  {"Marlin", "Lagos"}};

constexpr int kAttributes = 6;
// An open-book context states four of the six attributes, so context + target stays within 256 bytes.
constexpr int kOpenBookSentences = 4;
const char* const kAttributeNames[kAttributes] = {"birth_date", "birth_city", "university",
                                                  "field",      "employer",   "work_city"};
// Sentence templates per attribute: {n} is the full name, {v} the value.
const std::vector<std::string> kTemplates[kAttributes] = {
    {"{n} was born on {v}.", "{n} came into the world on {v}.", "{n}'s birth date is {v}.",
     "The birthday of {n} is {v}."},
    {"{n} was born in {v}.", "{n} is a native of {v}.", "{n}'s birthplace is {v}.", "{n} comes from {v}."},
    {"{n} studied at {v}.", "{n} graduated from {v}.", "{n} attended {v}.", "{n} earned a degree at {v}."},
    {"{n} majored in {v}.", "{n} focused on {v}.", "{n}'s field is {v}.", "{n} has a degree in {v}."},
    {"{n} works for {v}.", "{n} is employed by {v}.", "{n}'s employer is {v}.", "{n} has a job at {v}."},
    {"{n} works in {v}.", "{n} is based in {v}.", "{n}'s office is in {v}.", "{n} commutes to work in {v}."}};
const char* const kQuestions[kAttributes] = {"When was {n} born?",
                                             "Where was {n} born?",
                                             "Which university did {n} attend?",
                                             "What did {n} study?",
                                             "Which company does {n} work for?",
                                             "In which city does {n} work?"};

// Purposes of the seeded streams (mixed with the user's seed).
enum Stream : uint64_t { kNameStream = 1, kPersonStream, kParaphraseStream, kQuestionStream, kOpenBookStream };

struct Person {
  std::string name;
  std::string values[kAttributes];
};

std::string fill(const std::string& text, const std::string& name, const std::string& value) {
  std::string out;
  for (size_t i = 0; i < text.size(); i++) {
    if (text.compare(i, 3, "{n}") == 0) {
      out += name;
      i += 2;
    } else if (text.compare(i, 3, "{v}") == 0) {
      out += value;
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

template <typename T>
const T& pick(const std::vector<T>& items, Rng& rng) {
  return items[(size_t)rng.uniform(items.size())];
}

// All first x last names in a seeded order; people take them in turn, so every name is used once.
std::vector<std::string> shuffled_names(uint64_t seed) {
  std::vector<std::string> names;
  for (const std::string& first : kFirstNames) {
    for (const std::string& last : kLastNames) names.push_back(first + " " + last);
  }
  Rng rng(mix_seed(seed, kNameStream));
  tasks::shuffle_in_place(names, rng);
  return names;
}

Person make_person(const std::string& name, uint64_t seed, uint64_t index) {
  Rng rng(mix_seed(mix_seed(seed, kPersonStream), index));
  Person p;
  p.name = name;
  p.values[0] =
      pick(kMonths, rng) + " " + std::to_string(1 + rng.uniform(28)) + ", " + std::to_string(1950 + rng.uniform(50));
  p.values[1] = pick(kCities, rng);
  p.values[2] = pick(kUniversities, rng);
  p.values[3] = pick(kFields, rng);
  const auto& employer = pick(kEmployers, rng);
  p.values[4] = employer.first;
  p.values[5] = employer.second;
  return p;
}

// One biography: a sentence per attribute in `attributes` (in that order), attribute a in template template_of[a].
std::string biography(const Person& p, const std::vector<int>& attributes, const int* template_of) {
  std::string text;
  for (int a : attributes) {
    if (!text.empty()) text += "\n";
    text += fill(kTemplates[a][(size_t)template_of[a] % kTemplates[a].size()], p.name, p.values[a]);
  }
  return text;
}

std::vector<int> shuffled_attributes(Rng& rng) {
  std::vector<int> order = {0, 1, 2, 3, 4, 5};
  tasks::shuffle_in_place(order, rng);
  return order;
}

ProbeItem question(const Person& p, int attribute, const std::string& context_before) {
  std::string q = "Q: " + fill(kQuestions[attribute], p.name, "") + "\nA:";
  return {context_before + q, " " + p.values[attribute], kAttributeNames[attribute]};
}

// Biographies of every closed-book person, worked QA (all six questions) for the first half, and test items
// about distinct (person, attribute) pairs of the second half.
void add_closed_book(const ProbeOptions& o, const std::vector<Person>& people, ProbePart& part) {
  ProbeTrainText bios{"bios", {}}, qa{"qa_closed", {}};
  for (size_t i = 0; i < people.size(); i++) {
    Rng rng(mix_seed(mix_seed(o.seed, kParaphraseStream), i));
    int offsets[kAttributes], template_of[kAttributes];
    for (int& off : offsets) off = (int)rng.uniform(kTemplates[0].size());
    for (int v = 0; v < o.paraphrases; v++) {
      for (int a = 0; a < kAttributes; a++) template_of[a] = v + offsets[a];
      bios.documents.push_back(biography(people[i], shuffled_attributes(rng), template_of));
    }
  }
  size_t qa_people = people.size() / 2;
  for (size_t i = 0; i < qa_people; i++) {
    Rng rng(mix_seed(mix_seed(o.seed, kQuestionStream), i));
    std::string doc;
    for (int a : shuffled_attributes(rng)) {
      ProbeItem item = question(people[i], a, "");
      doc += (doc.empty() ? "" : "\n") + item.context + item.target;
    }
    qa.documents.push_back(doc);
  }
  std::vector<std::pair<size_t, int>> pairs;  // (person, attribute) of the test half
  for (size_t i = qa_people; i < people.size(); i++) {
    for (int a = 0; a < kAttributes; a++) pairs.push_back({i, a});
  }
  Rng rng(mix_seed(o.seed, kQuestionStream));
  tasks::shuffle_in_place(pairs, rng);
  ProbeTask task{"closed_book_qa", "closed_book_qa", {}};
  for (int k = 0; k < o.test_items; k++) task.items.push_back(question(people[pairs[k].first], pairs[k].second, ""));
  for (size_t i = qa_people; i < people.size(); i++) part.closed_book_test_people.push_back(people[i].name);
  part.train.push_back(std::move(bios));
  part.train.push_back(std::move(qa));
  part.tasks.push_back(std::move(task));
}

// A new person's short biography (kOpenBookSentences random attributes, the asked one among them, random
// templates), then one question about them; the worked ones are context + target.
ProbeItem open_book_item(const Person& p, uint64_t seed, uint64_t index) {
  Rng rng(mix_seed(mix_seed(seed, kOpenBookStream), index));
  int attribute = (int)rng.uniform(kAttributes);
  std::vector<int> order = shuffled_attributes(rng);
  order.resize(kOpenBookSentences);
  if (std::find(order.begin(), order.end(), attribute) == order.end()) order[rng.uniform(order.size())] = attribute;
  int template_of[kAttributes];
  for (int& t : template_of) t = (int)rng.uniform(kTemplates[0].size());
  return question(p, attribute, biography(p, order, template_of) + "\n");
}

}  // namespace

int name_capacity() { return (int)(kFirstNames.size() * kLastNames.size()); }

ProbePart make_people_probes(const ProbeOptions& o) {
  std::vector<std::string> names = shuffled_names(o.seed);
  size_t next = 0;
  auto take_people = [&](int count) {
    std::vector<Person> people;
    for (int i = 0; i < count; i++, next++) people.push_back(make_person(names[next], o.seed, next));
    return people;
  };
  ProbePart part;
  add_closed_book(o, take_people(o.people), part);
  std::vector<Person> open_train = take_people(o.open_book_train), open_test = take_people(o.test_items);
  ProbeTrainText worked{"qa_open", {}};
  for (size_t i = 0; i < open_train.size(); i++) {
    ProbeItem item = open_book_item(open_train[i], o.seed, i);
    worked.documents.push_back(item.context + item.target);
  }
  ProbeTask task{"open_book_qa", "open_book_qa", {}};
  for (size_t i = 0; i < open_test.size(); i++) {
    task.items.push_back(open_book_item(open_test[i], o.seed, open_train.size() + i));
    part.open_book_test_people.push_back(open_test[i].name);
  }
  part.train.push_back(std::move(worked));
  part.tasks.push_back(std::move(task));
  return part;
}

}  // namespace recur::probes_detail
