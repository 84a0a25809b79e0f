// i-GSM (docs/tasks.md): symbolic grade-school math mod 7. Parameters X#Y name edges of an entity hierarchy; each is
// a constant or a +,-/* expression of up to 4 others; definitions are shuffled (or in a random dependency
// order), distractors added, and one parameter is queried. The generator plants a dependency DAG with an exact
// operation count; the solver parses the prompt and evaluates the query recursively. Optional dense targets
// supervise the value of every parameter at the end of its definition, where the prefix determines it, and a
// name can be one token instead of three. Options add the paper's constant-with-parameter forms ("c more than":
// c + X#Y, "c times": c * X#Y), make the answer uniform over 0-6 (by rejection of planted DAGs), and split train
// from test by the problem's template (names and digits abstracted) instead of its exact prompt.
#include <algorithm>
#include <map>
#include <set>

#include "recur/error.h"
#include "task_common.h"

namespace recur::tasks {

namespace {

constexpr int kModulus = 7;

// A parameter of the generated problem. Operands are indices into the node list.
struct Node {
  int name = 0;  // index into the list of hierarchy edges
  bool is_constant = true;
  int32_t value = 0;          // constants only (the generator does not need the others)
  std::vector<int> operands;  // expression nodes: 1..max_operands operands (1 = a copy)
  std::vector<int32_t> ops;   // operands.size() - 1 operator tokens
  int32_t constant = -1;      // constant forms: c in 1..6 before the operands (c + ..., c * ...), -1: none
  int32_t constant_op = 0;    // the operator token after c: + in a sum, * in a product (a copy: either)
};

// An edge (X in level l, Y in level l + 1) of the hierarchy: the parameter "Y's in each X".
struct Edge {
  int x = 0, y = 0;  // entity letters, 0 = A
};

class IgsmTask : public TaskBase {
 public:
  IgsmTask(Options& options, uint64_t seed)
      : TaskBase(seed, options, "ops_train", {1, 2, 3, 4, 5, 6, 7, 8}, "ops_test", {2, 4, 6, 8}, 1, 100) {
    levels_ = options.get_int("levels", 4, 2, 13);
    entities_ = options.get_int("entities", 4, 1, 13);
    distractors_ = options.get_int("distractors", 4, 0, 100);
    max_operands_ = options.get_int("max_operands", 4, 1, 4);
    dependency_order_ = options.get_string("order", "shuffled", {"shuffled", "dependency"}) == "dependency";
    dense_ = options.get_bool("dense", false);
    dense_operands_ = options.get_bool("dense_operands", false);
    single_token_names_ = options.get_string("names", "pairs", {"pairs", "tokens"}) == "tokens";
    constant_distractors_ = options.get_string("distractor_kind", "mixed", {"mixed", "constants"}) == "constants";
    constant_forms_ = options.get_bool("constant_forms", false);
    uniform_answers_ = options.get_string("answers", "uniform", {"uniform", "natural"}) == "uniform";
    template_split_ = options.get_string("split", "prompt", {"prompt", "template"}) == "template";
    options.check_no_unknown_keys();
    check(!dense_operands_ || dense_, "igsm: dense_operands adds to the dense targets; set \"dense\": true as well");
    check(levels_ * entities_ <= 26, "igsm: levels * entities = ", levels_ * entities_,
          " exceeds the 26 entity names A-Z; lower levels or entities");
    for (int level = 0; level + 1 < levels_; level++) {
      for (int x = 0; x < entities_; x++) {
        for (int y = 0; y < entities_; y++) edges_.push_back({level * entities_ + x, (level + 1) * entities_ + y});
      }
    }
    int needed = 1 + 2 * max_difficulty();  // at most 1 + 2*ops parameters feed the query (see plant_needed)
    check(needed + distractors_ <= (int)edges_.size(), "igsm: up to ", needed, " needed parameters plus ", distractors_,
          " distractors do not fit the ", edges_.size(),
          " parameters X#Y of the hierarchy; raise entities or levels, or lower ops_* or distractors");
  }

  std::string name() const override { return "igsm"; }
  int vocab_size() const override { return end_token() + 1; }

  int max_length() const override {
    // Needed definitions: at most 18*ops + 6 tokens (each operation adds at most one 4m+4-token expression
    // with m <= cost+1 operands and one 6-token constant). Distractors: at most 4*max_operands + 4 each. A
    // constant form adds 2 tokens (c and its operator) to an expression. Then the query `X # Y ?` and the
    // answer with its end token.
    int constant_tokens = constant_forms_ ? 2 : 0;
    return (18 + constant_tokens) * max_difficulty() + 6 + distractors_ * (4 * max_operands_ + 4 + constant_tokens) +
           4 + 2;
  }

  Example generate(Split split, uint64_t index, int difficulty) const override {
    return sample_in_split(split, index, difficulty, [&](Rng& rng) { return make_candidate(rng, difficulty); });
  }

  std::vector<int32_t> solve(const std::vector<int32_t>& prompt) const override;
  std::vector<int32_t> split_key(const std::vector<int32_t>& prompt) const override;

  std::string to_text(const std::vector<int32_t>& tokens) const override {
    std::string out;
    for (size_t i = 0; i < tokens.size(); i++) {
      bool glue = tokens[i] == hash_token() || (i > 0 && tokens[i - 1] == hash_token());
      if (i > 0 && !glue) out += " ";
      out += token_name(tokens[i]);  // a single-token name renders as X#Y too
    }
    return out;
  }

 private:
  // Token ids: digits 0-6, then the name tokens (entity letters, or with names = "tokens" one per edge), then
  // the symbols.
  int name_tokens() const { return single_token_names_ ? (int)edges_.size() : levels_ * entities_; }
  int32_t hash_token() const { return kModulus + name_tokens(); }
  int32_t assign_token() const { return hash_token() + 1; }
  int32_t plus_token() const { return hash_token() + 2; }
  int32_t minus_token() const { return hash_token() + 3; }
  int32_t times_token() const { return hash_token() + 4; }
  int32_t period_token() const { return hash_token() + 5; }
  int32_t query_token() const { return hash_token() + 6; }
  int32_t end_token() const { return hash_token() + 7; }
  bool is_name_token(int32_t t) const { return t >= kModulus && t < hash_token(); }
  static std::string letter(int entity) { return std::string(1, (char)('A' + entity)); }
  // The index into edges_ of the edge from letter x to letter y (edges_ runs level, then x, then y), or -1 if
  // y is not in the level right below x's.
  int edge_of_letters(int x, int y) const {
    int level = x / entities_;
    if (y / entities_ != level + 1) return -1;
    return (level * entities_ + x % entities_) * entities_ + y % entities_;
  }

  std::string token_name(int32_t t) const {
    if (t >= 0 && t < kModulus) return std::to_string(t);
    if (is_name_token(t) && single_token_names_) {
      const Edge& edge = edges_[t - kModulus];
      return letter(edge.x) + "#" + letter(edge.y);
    }
    if (is_name_token(t)) return letter(t - kModulus);
    static const std::vector<std::string> symbols = {"#", ":=", "+", "-", "*", ".", "?", "<end>"};
    if (t >= hash_token() && t <= end_token()) return symbols[t - hash_token()];
    return "<?" + std::to_string(t) + ">";
  }

  // Cost of an expression with m operands: its m - 1 operators, and 1 for a copy; a constant form adds its operator
  // (c + X#Y costs 1, c + X#Y + Z#W costs 2).
  static int operation_cost(int m, bool constant = false) { return constant ? m : std::max(1, m - 1); }

  std::vector<Node> plant_needed(Rng& rng, int ops) const;
  std::vector<Node> plant_with_answer(Rng& rng, int ops) const;
  void add_distractors(Rng& rng, std::vector<Node>* nodes) const;
  void choose_operators(Rng& rng, Node* node) const;
  Example make_candidate(Rng& rng, int ops) const;
  void append_name(int edge, std::vector<int32_t>* tokens) const;
  // The edge named at tokens[at..], and the name's length in tokens; -1 if no name starts there.
  int read_name(const std::vector<int32_t>& tokens, size_t at, size_t* length) const;
  // Appends node `index`'s definition; operand_ends (if not null) gets the position of each operand's last
  // name token, in operand order.
  void append_definition(const std::vector<Node>& nodes, int index, const std::vector<int>& names,
                         std::vector<int32_t>* tokens, std::vector<size_t>* operand_ends = nullptr) const;
  // Makes `node` a constant form: c in 1..6 with the expression's operator kind ("c more than" in a sum, "c times"
  // in a product; a copy takes either).
  void add_constant(Rng& rng, Node* node) const {
    node->constant = uniform_int(rng, 1, kModulus - 1);
    bool product = node->ops.empty() ? rng.uniform(2) == 0 : node->ops[0] == times_token();
    node->constant_op = product ? times_token() : plus_token();
  }
  int32_t evaluate_planted(const std::vector<Node>& nodes, int index, std::vector<int32_t>* memo) const;
  static std::vector<int> dependency_order(Rng& rng, const std::vector<Node>& nodes);
  static int latest_dependency(const std::vector<Node>& nodes, const std::vector<int>& rank, int index,
                               std::vector<int>* memo);

  int levels_ = 4, entities_ = 4, distractors_ = 4, max_operands_ = 4;
  bool dependency_order_ = false, dense_ = false, dense_operands_ = false;
  bool single_token_names_ = false, constant_distractors_ = false;
  bool constant_forms_ = false, uniform_answers_ = true, template_split_ = false;
  std::vector<Edge> edges_;
};

// The query's dependency DAG, built from the query down. nodes[0] is the query; operands always have larger
// indices than their user (so the graph is acyclic), and every node is an operand of an earlier one (so all of
// them are needed). Each expression spends its cost from the budget; once it is spent, pending nodes become
// constants. The total cost of the DAG is exactly `ops`, and it has at most 1 + 2*ops nodes.
std::vector<Node> IgsmTask::plant_needed(Rng& rng, int ops) const {
  std::vector<Node> nodes(1);
  int budget = ops;
  for (size_t next = 0; next < nodes.size(); next++) {
    if (budget == 0) continue;                  // stays a constant
    std::vector<std::pair<int, bool>> choices;  // (operands, constant form)
    for (int m = 1; m <= max_operands_; m++) {
      if (operation_cost(m) <= budget) choices.push_back({m, false});
      // a copy with a constant (c + X#Y) costs what a copy does and is a form of its own
      if (constant_forms_ && operation_cost(m, true) <= budget) choices.push_back({m, true});
    }
    auto [m, constant] = choices[rng.uniform(choices.size())];
    budget -= operation_cost(m, constant);
    // If nothing else is pending, one operand must be new so that the rest of the budget can be spent.
    bool need_fresh = budget > 0 && next + 1 == nodes.size();
    std::vector<int> operands;
    for (int slot = 0; slot < m; slot++) {
      std::vector<int> reusable;  // pending nodes not yet used by this expression
      for (int j = (int)next + 1; j < (int)nodes.size(); j++) {
        if (std::find(operands.begin(), operands.end(), j) == operands.end()) reusable.push_back(j);
      }
      bool fresh = reusable.empty() || (slot == 0 && need_fresh) || rng.uniform(3) != 0;
      if (fresh) {
        operands.push_back((int)nodes.size());
        nodes.emplace_back();
      } else {
        operands.push_back(reusable[rng.uniform(reusable.size())]);
      }
    }
    shuffle_in_place(operands, rng);
    nodes[next].is_constant = false;
    nodes[next].operands = operands;
    choose_operators(rng, &nodes[next]);
    if (constant) add_constant(rng, &nodes[next]);
  }
  for (Node& node : nodes) {
    if (node.is_constant) node.value = (int32_t)rng.uniform(kModulus);
  }
  return nodes;
}

// The needed DAG; with uniform answers, a target drawn uniformly from 0-6 first and DAGs planted until the query's
// value is the target (the distractors cannot change it), so every answer is equally likely at every difficulty.
std::vector<Node> IgsmTask::plant_with_answer(Rng& rng, int ops) const {
  int32_t target = uniform_answers_ ? (int32_t)rng.uniform(kModulus) : -1;
  while (true) {
    std::vector<Node> nodes = plant_needed(rng, ops);
    std::vector<int32_t> memo(nodes.size(), -1);
    if (target < 0 || evaluate_planted(nodes, 0, &memo) == target) return nodes;
  }
}

// Distractors: parameters no needed node refers to. Each is a constant or an expression of any parameter
// defined before it (needed or distractor), so it looks like the needed ones; with distractor_kind "constants"
// each is a constant, which puts more digits in the prompt than the answer depends on.
void IgsmTask::add_distractors(Rng& rng, std::vector<Node>* nodes) const {
  for (int d = 0; d < distractors_; d++) {
    Node node;
    int available = (int)nodes->size();
    bool expression = rng.uniform(3) != 0;
    if (expression && !constant_distractors_) {
      int m = uniform_int(rng, 1, std::min(max_operands_, available));
      std::vector<int> pool(available);
      for (int j = 0; j < available; j++) pool[j] = j;
      shuffle_in_place(pool, rng);
      node.is_constant = false;
      node.operands.assign(pool.begin(), pool.begin() + m);
      choose_operators(rng, &node);
      if (constant_forms_ && rng.uniform(3) == 0) add_constant(rng, &node);
    } else {
      node.value = (int32_t)rng.uniform(kModulus);
    }
    nodes->push_back(node);
  }
}

// An expression is either a sum with + and - (in any mix) or a product, so no precedence question arises.
void IgsmTask::choose_operators(Rng& rng, Node* node) const {
  bool product = rng.uniform(3) == 0;
  node->ops.clear();
  for (size_t k = 1; k < node->operands.size(); k++) {
    if (product) {
      node->ops.push_back(times_token());
    } else {
      node->ops.push_back(rng.uniform(2) == 0 ? plus_token() : minus_token());
    }
  }
}

int32_t IgsmTask::evaluate_planted(const std::vector<Node>& nodes, int index, std::vector<int32_t>* memo) const {
  if ((*memo)[index] >= 0) return (*memo)[index];
  const Node& node = nodes[index];
  int32_t value = node.value;
  if (!node.is_constant) {
    value = evaluate_planted(nodes, node.operands[0], memo);
    for (size_t k = 1; k < node.operands.size(); k++) {
      int32_t operand = evaluate_planted(nodes, node.operands[k], memo);
      if (node.ops[k - 1] == plus_token()) value = (value + operand) % kModulus;
      if (node.ops[k - 1] == minus_token()) value = (value - operand + kModulus) % kModulus;
      if (node.ops[k - 1] == times_token()) value = (value * operand) % kModulus;
    }
    // c + (the sum), c * (the product): the constant comes first, so left to right gives the same value
    if (node.constant >= 0 && node.constant_op == times_token()) value = node.constant * value % kModulus;
    if (node.constant >= 0 && node.constant_op == plus_token()) value = (node.constant + value) % kModulus;
  }
  (*memo)[index] = value;
  return value;
}

void IgsmTask::append_name(int edge, std::vector<int32_t>* tokens) const {
  if (single_token_names_) {
    tokens->push_back(kModulus + edge);
  } else {
    tokens->insert(tokens->end(), {kModulus + edges_[edge].x, hash_token(), kModulus + edges_[edge].y});
  }
}

int IgsmTask::read_name(const std::vector<int32_t>& tokens, size_t at, size_t* length) const {
  if (single_token_names_) {
    *length = 1;
    return at < tokens.size() && is_name_token(tokens[at]) ? tokens[at] - kModulus : -1;
  }
  *length = 3;
  if (at + 2 >= tokens.size() || !is_name_token(tokens[at]) || tokens[at + 1] != hash_token() ||
      !is_name_token(tokens[at + 2])) {
    return -1;
  }
  return edge_of_letters(tokens[at] - kModulus, tokens[at + 2] - kModulus);
}

void IgsmTask::append_definition(const std::vector<Node>& nodes, int index, const std::vector<int>& names,
                                 std::vector<int32_t>* tokens, std::vector<size_t>* operand_ends) const {
  const Node& node = nodes[index];
  append_name(names[index], tokens);
  tokens->push_back(assign_token());
  if (node.is_constant) {
    tokens->push_back(node.value);
  } else {
    if (node.constant >= 0) tokens->insert(tokens->end(), {node.constant, node.constant_op});
    for (size_t k = 0; k < node.operands.size(); k++) {
      if (k > 0) tokens->push_back(node.ops[k - 1]);
      append_name(names[node.operands[k]], tokens);
      if (operand_ends) operand_ends->push_back(tokens->size() - 1);
    }
  }
  tokens->push_back(period_token());
}

// A uniformly drawn next definition among those whose operands are all defined: a random topological order.
std::vector<int> IgsmTask::dependency_order(Rng& rng, const std::vector<Node>& nodes) {
  std::vector<int> order;
  std::vector<bool> placed(nodes.size(), false);
  while (order.size() < nodes.size()) {
    std::vector<int> ready;
    for (int i = 0; i < (int)nodes.size(); i++) {
      bool operands_placed = true;
      for (int operand : nodes[i].operands) operands_placed = operands_placed && placed[operand];
      if (!placed[i] && operands_placed) ready.push_back(i);
    }
    int next = ready[rng.uniform(ready.size())];
    placed[next] = true;
    order.push_back(next);
  }
  return order;
}

// The latest place in the prompt of any parameter node `index` depends on (transitively), or -1 for a
// constant. rank[i] is node i's place; the prefix up to a definition determines its value when this is earlier.
int IgsmTask::latest_dependency(const std::vector<Node>& nodes, const std::vector<int>& rank, int index,
                                std::vector<int>* memo) {
  if ((*memo)[index] >= -1) return (*memo)[index];
  int latest = -1;
  for (int operand : nodes[index].operands) {
    latest = std::max({latest, rank[operand], latest_dependency(nodes, rank, operand, memo)});
  }
  (*memo)[index] = latest;
  return latest;
}

Example IgsmTask::make_candidate(Rng& rng, int ops) const {
  std::vector<Node> nodes = plant_with_answer(rng, ops);
  add_distractors(rng, &nodes);
  // Distinct random parameter names for all nodes.
  std::vector<int> names(edges_.size());
  for (size_t i = 0; i < names.size(); i++) names[i] = (int)i;
  shuffle_in_place(names, rng);
  names.resize(nodes.size());
  // Definitions in a random order (by default not the dependency order), then the query about node 0.
  std::vector<int> order(nodes.size());
  if (dependency_order_) {
    order = dependency_order(rng, nodes);
  } else {
    for (size_t i = 0; i < order.size(); i++) order[i] = (int)i;
    shuffle_in_place(order, rng);
  }
  Example example;
  std::vector<int32_t> values(nodes.size(), -1);
  std::vector<int> rank(nodes.size());
  for (size_t r = 0; r < order.size(); r++) rank[order[r]] = (int)r;
  std::vector<int> latest(nodes.size(), -2);
  // Whether the first `defined` definitions fix node's value: it and everything it depends on are among them.
  auto determined_by = [&](int node, int defined) {
    return rank[node] < defined && latest_dependency(nodes, rank, node, &latest) < defined;
  };
  for (int index : order) {
    std::vector<size_t> operand_ends;
    append_definition(nodes, index, names, &example.tokens, &operand_ends);
    if (!dense_) continue;
    // Dense supervision where the prefix fixes the value: the output at the definition's '.' predicts it, and
    // with dense_operands the output at each operand's name predicts that operand's value.
    example.dense_targets.resize(example.tokens.size(), -1);
    if (determined_by(index, rank[index] + 1)) {
      example.dense_targets.back() = evaluate_planted(nodes, index, &values);
    }
    for (size_t k = 0; k < operand_ends.size() && dense_operands_; k++) {
      int operand = nodes[index].operands[k];
      if (determined_by(operand, rank[index])) {
        example.dense_targets[operand_ends[k]] = evaluate_planted(nodes, operand, &values);
      }
    }
  }
  append_name(names[0], &example.tokens);
  example.tokens.push_back(query_token());
  example.answer_begin = (int32_t)example.tokens.size();
  example.tokens.push_back(evaluate_planted(nodes, 0, &values));
  example.tokens.push_back(end_token());
  if (dense_) add_answer_targets(example);  // '?' -> answer -> end
  return example;
}

// The template: names by order of first appearance (as -1, -2, ...), digits as one placeholder, symbols kept.
std::vector<int32_t> IgsmTask::split_key(const std::vector<int32_t>& prompt) const {
  if (!template_split_) return prompt;
  const int32_t digit_placeholder = -1000;
  std::map<int, int32_t> canonical;  // edge -> -(1 + order of first appearance)
  std::vector<int32_t> key;
  for (size_t i = 0; i < prompt.size();) {
    size_t length = 0;
    int edge = read_name(prompt, i, &length);
    if (edge >= 0) {
      auto it = canonical.emplace(edge, -(int32_t)canonical.size() - 1).first;
      key.push_back(it->second);
      i += length;
      continue;
    }
    key.push_back(prompt[i] >= 0 && prompt[i] < kModulus ? digit_placeholder : prompt[i]);
    i++;
  }
  return key;
}

// ---- solver: parse the definitions, then evaluate the query by recursive descent with memoization ----------

struct ParsedProblem {
  std::map<int, std::vector<int32_t>> definitions;  // edge -> expression tokens
  int query = -1;
};

std::vector<int32_t> IgsmTask::solve(const std::vector<int32_t>& prompt) const {
  ParsedProblem problem;
  size_t i = 0;
  while (true) {
    size_t length = 0;
    int defined = read_name(prompt, i, &length);
    if (defined < 0) throw_bad_prompt(name(), "expected a parameter X#Y at position " + std::to_string(i));
    i += length;
    if (i < prompt.size() && prompt[i] == query_token()) {
      if (i + 1 != prompt.size()) throw_bad_prompt(name(), "tokens after the query's '?'");
      problem.query = defined;
      break;
    }
    if (i >= prompt.size() || prompt[i] != assign_token()) {
      throw_bad_prompt(name(), "expected ':=' or '?' at position " + std::to_string(i));
    }
    size_t end = i + 1;
    while (end < prompt.size() && prompt[end] != period_token()) end++;
    if (end >= prompt.size()) throw_bad_prompt(name(), "a definition does not end with '.'");
    if (problem.definitions.count(defined)) throw_bad_prompt(name(), "a parameter is defined twice");
    problem.definitions[defined] = std::vector<int32_t>(prompt.begin() + i + 1, prompt.begin() + end);
    i = end + 1;
  }

  std::map<int, int32_t> values;
  std::set<int> in_progress;
  // value(name): evaluates the definition's expression with * binding tighter than + and -, all mod 7.
  std::function<int32_t(int)> value = [&](int param) {
    auto known = values.find(param);
    if (known != values.end()) return known->second;
    auto def = problem.definitions.find(param);
    if (def == problem.definitions.end()) throw_bad_prompt(name(), "a parameter is used but never defined");
    if (in_progress.count(param)) throw_bad_prompt(name(), "the definitions are cyclic");
    in_progress.insert(param);
    const std::vector<int32_t>& e = def->second;
    size_t at = 0;
    auto factor = [&]() -> int32_t {
      if (at < e.size() && e[at] >= 0 && e[at] < kModulus) return e[at++];
      size_t length = 0;
      int operand = read_name(e, at, &length);
      if (operand >= 0) {
        at += length;
        return value(operand);
      }
      throw_bad_prompt(name(), "malformed expression");
    };
    auto term = [&]() -> int32_t {
      int32_t product = factor();
      while (at < e.size() && e[at] == times_token()) {
        at++;
        product = product * factor() % kModulus;
      }
      return product;
    };
    int32_t total = term();
    while (at < e.size() && (e[at] == plus_token() || e[at] == minus_token())) {
      bool add = e[at] == plus_token();
      at++;
      int32_t t = term();
      total = add ? (total + t) % kModulus : (total - t + kModulus) % kModulus;
    }
    if (at != e.size()) throw_bad_prompt(name(), "malformed expression");
    in_progress.erase(param);
    values[param] = total;
    return total;
  };
  return {value(problem.query), end_token()};
}

}  // namespace

std::unique_ptr<Task> make_igsm_task(const nlohmann::json& options, uint64_t seed) {
  Options parsed("igsm", options);
  return std::make_unique<IgsmTask>(parsed, seed);
}

}  // namespace recur::tasks
