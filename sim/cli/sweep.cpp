// SPDX-License-Identifier: Apache-2.0
// `iommusim sweep`: every combination of parameter values, one process per
// point (SystemC elaborates once per process), locally with --jobs N or on a
// SLURM cluster through a manifest and a job-array script; `sweep collect`
// turns the points' results into sweep.csv. A local sweep writes its CSV with
// the same collect step, so both ways give the same bytes.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/cli/cli.hpp"
#include "sim/platform.hpp"
#include "sim/stat_select.hpp"

extern char** environ;

namespace iommusim::cli {

using sim::json;

namespace {

constexpr const char* kManifest = "manifest.json";

/// SIGINT/SIGTERM received by a local sweep (0 = none). The sweep forwards it
/// to the running points (which write what they have, issue 17), starts no
/// more, waits for them and still writes sweep.csv: nothing is lost.
volatile std::sig_atomic_t g_sweep_signal = 0;
extern "C" void on_sweep_signal(int sig) { g_sweep_signal = sig; }

/// Splits "V1,V2,..." at commas outside brackets, braces and quotes, so JSON
/// arrays and objects are values too: `acs=["SV","RR"],[]`.
std::vector<std::string> split_values(const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    int depth = 0;
    bool quoted = false;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (quoted) {
            if (c == '\\' && i + 1 < s.size()) cur += c, cur += s[++i];
            else cur += c, quoted = c != '"';
            continue;
        }
        if (c == '"') quoted = true;
        else if (c == '[' || c == '{') ++depth;
        else if (c == ']' || c == '}') --depth;
        else if (c == ',' && depth == 0) {
            out.push_back(cur);
            cur.clear();
            continue;
        }
        cur += c;
    }
    out.push_back(cur);
    return out;
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

std::string point_dir(size_t i, size_t n) {
    const size_t width = std::to_string(n > 0 ? n - 1 : 0).size();
    std::string d = std::to_string(i);
    return "point-" + std::string(width > d.size() ? width - d.size() : 0, '0') + d;
}

json read_json(const fs::path& p) {
    std::ifstream in(p);
    if (!in) return json(nullptr);
    json j = json::parse(in, nullptr, false);
    return j.is_discarded() ? json(nullptr) : j;
}

/// Resolves every --stat against the elaborated platform of the first point:
/// an unknown name is bad input before anything runs.
std::vector<std::string> check_stats(const std::string& file, const std::vector<std::string>& sets,
                                     const std::vector<std::string>& stats) {
    sim::Platform platform(sim::load_platform(file, sets));
    std::vector<std::string> out;
    for (const auto& s : stats) out.push_back(sim::select_stat(platform.stats(), s, "--stat").str());
    return out;
}

/// Runs `argv` as a child of this executable; returns its pid.
pid_t spawn_self(std::vector<std::string> args) {
    static const std::string self = fs::read_symlink("/proc/self/exe").string();
    std::vector<char*> argv;
    std::string s = self;
    argv.push_back(s.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // SIGINT and SIGTERM blocked in the point until its handlers are installed
    // (main.cpp catch_stop_signals unblocks them): a signal the sweep forwards
    // while a point is still starting (loading, sanitizer start-up) stays pending
    // and stops it at time 0 with its results written, instead of killing it
    // before it has a handler (found by the SIGTERM sweep test under ASan).
    posix_spawnattr_t attr;
    if (posix_spawnattr_init(&attr) != 0) return -1;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    posix_spawnattr_setsigmask(&attr, &stop);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, self.c_str(), nullptr, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    return rc != 0 ? -1 : pid;
}

/// Writes DIR/sweep.csv from the manifest and the points' results folders.
/// Columns: the varied keys, each stat (header "name [unit]"), the point's
/// exit code (empty when it did not finish) and its folder.
int collect(const fs::path& dir) {
    const json m = read_json(dir / kManifest);
    if (!m.is_object() || !m.contains("points")) {
        std::cerr << "iommusim: " << (dir / kManifest).string() << ": not a sweep manifest\n";
        return 2;
    }
    std::vector<std::string> keys, stats;
    for (const auto& a : m["axes"]) keys.push_back(a["key"].get<std::string>());
    for (const auto& s : m["stats"]) stats.push_back(s.get<std::string>());
    std::vector<json> docs, runs;
    for (const auto& p : m["points"]) {
        docs.push_back(read_json(dir / p["dir"].get<std::string>() / "stats.json"));
        runs.push_back(read_json(dir / p["dir"].get<std::string>() / "run.json"));
    }
    // A stat's unit from the first point that has it.
    auto unit_of = [&](const std::string& sel) -> std::string {
        for (const auto& d : docs) {
            if (!d.is_object()) continue;
            for (const std::string& stat : {sel, sel.substr(0, sel.rfind('.'))}) {
                const json* j = &d;
                size_t start = 0;
                while (j && start <= stat.size()) {
                    const size_t dot = stat.find('.', start);
                    const std::string part = stat.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
                    j = j->is_object() && j->contains(part) ? &(*j)[part] : nullptr;
                    if (dot == std::string::npos) break;
                    start = dot + 1;
                }
                if (j && j->is_object() && j->contains("unit")) {
                    if (stat != sel && sel.ends_with(".count")) return "samples";
                    return (*j)["unit"].get<std::string>();
                }
            }
        }
        return "";
    };
    std::ofstream csv(dir / "sweep.csv");
    for (const auto& k : keys) csv << csv_field(k) << ',';
    for (const auto& s : stats) {
        const std::string u = unit_of(s);
        csv << csv_field(u.empty() ? s : s + " [" + u + "]") << ',';
    }
    csv << "exit_code,point\n";
    int worst = 0;
    for (size_t i = 0; i < m["points"].size(); ++i) {
        const json& p = m["points"][i];
        for (const auto& v : p["values"]) csv << csv_field(v.get<std::string>()) << ',';
        for (const auto& s : stats) {
            // The selector resolved against the run's stats.json: "a.b" is a value, "a.b.p99" a histogram field.
            json v = nullptr;
            if (docs[i].is_object()) {
                v = sim::selected_json(docs[i], sim::StatSelector{s, "", nullptr});
                if (v.is_null() && s.find('.') != std::string::npos)
                    v = sim::selected_json(docs[i], sim::StatSelector{s.substr(0, s.rfind('.')), s.substr(s.rfind('.') + 1), nullptr});
            }
            if (!v.is_null()) csv << v.dump();
            csv << ',';
        }
        if (runs[i].is_object() && runs[i].contains("exit_code")) {
            const int rc = runs[i]["exit_code"].get<int>();
            csv << rc;
            worst = std::max(worst, rc);
        } else {
            worst = std::max(worst, 1);
        }
        csv << ',' << csv_field(p["dir"].get<std::string>()) << '\n';
    }
    csv.flush();
    if (!csv) {
        std::cerr << "iommusim: cannot write results: " << (dir / "sweep.csv").string() << ": write failed\n";
        return 1;
    }
    std::printf("sweep: %s\n", (dir / "sweep.csv").c_str());
    return worst;
}

struct SweepOptions {
    std::string file, out, emit, collect_dir;
    std::vector<std::string> vary, stats, sets;
    unsigned jobs = 1;
};

int sweep(const SweepOptions& o) {
    if (o.file.empty()) {
        std::cerr << "iommusim: sweep needs a platform file (or: sweep collect DIR)\n";
        return 2;
    }
    json axes = json::array();
    for (const auto& v : o.vary) {
        const auto eq = v.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == v.size()) {
            std::cerr << "iommusim: --vary expects PATH=V1,V2,... got \"" << v << "\"\n";
            return 2;
        }
        axes.push_back({{"key", v.substr(0, eq)}, {"values", split_values(v.substr(eq + 1))}});
    }
    // The cartesian product, first axis slowest.
    std::vector<std::vector<std::string>> points{{}};
    for (const auto& a : axes) {
        std::vector<std::vector<std::string>> next;
        for (const auto& p : points)
            for (const auto& val : a["values"]) {
                auto q = p;
                q.push_back(val.get<std::string>());
                next.push_back(std::move(q));
            }
        points = std::move(next);
    }
    auto point_sets = [&](const std::vector<std::string>& values) {
        std::vector<std::string> s = o.sets;
        for (size_t k = 0; k < values.size(); ++k) s.push_back(axes[k]["key"].get<std::string>() + "=" + values[k]);
        return s;
    };
    sim::PlatformConfig base;
    std::vector<std::string> stats;
    try {
        base = sim::load_platform(o.file, o.sets);
        for (const auto& p : points) (void)sim::load_platform(o.file, point_sets(p)); // every point valid before anything runs
        stats = check_stats(o.file, point_sets(points.front()), o.stats);
    } catch (const sim::ConfigError& e) {
        std::cerr << "iommusim: " << o.file << ": " << e.what() << "\n";
        return 2;
    }
    const fs::path out = o.out.empty() ? fs::path("results") / sim::output_name(base.name + "-sweep") : fs::path(o.out);
    std::error_code ec;
    if (fs::exists(out, ec)) { // an earlier sweep's points and files go, so no stale point survives; others stay
        for (const auto& e : fs::directory_iterator(out, ec))
            if (e.path().filename().string().starts_with("point-") || e.path().filename().string().starts_with("slurm-"))
                fs::remove_all(e.path(), ec);
        for (const char* f : {kManifest, "sweep.csv", "sweep.sbatch"}) fs::remove(out / f, ec);
    }
    fs::create_directories(out, ec);
    if (ec) {
        std::cerr << "iommusim: cannot create " << out.string() << ": " << ec.message() << "\n";
        return 1;
    }
    const fs::path platform_abs = fs::absolute(o.file).lexically_normal();
    json m = json::object();
    m["schema_version"] = kSchemaVersion;
    m["iommusim_version"] = version();
    m["platform_file"] = platform_abs.string();
    m["sets"] = o.sets;
    m["axes"] = axes;
    m["stats"] = stats;
    m["points"] = json::array();
    for (size_t i = 0; i < points.size(); ++i) {
        json p = json::object();
        p["dir"] = point_dir(i, points.size());
        p["values"] = points[i];
        json s = json::array();
        for (size_t k = 0; k < points[i].size(); ++k) s.push_back(axes[k]["key"].get<std::string>() + "=" + points[i][k]);
        p["sets"] = s;
        m["points"].push_back(std::move(p));
    }
    std::ofstream(out / kManifest) << m.dump(2) << "\n";

    if (o.emit == "slurm") {
        const fs::path dir = fs::absolute(out).lexically_normal();
        const std::string self = fs::read_symlink("/proc/self/exe").string();
        std::ofstream sh(out / "sweep.sbatch");
        sh << "#!/bin/bash\n"
           << "# One array task per sweep point; then: iommusim sweep collect " << dir.string() << "\n"
           << "#SBATCH --job-name=iommusim-" << base.name << "\n"
           << "#SBATCH --array=0-" << points.size() - 1 << "\n"
           << "#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=1\n"
           << "#SBATCH --output=" << (dir / "slurm-%A_%a.out").string() << "\n"
           << "exec '" << self << "' run --manifest '" << (dir / kManifest).string() << "' --index \"$SLURM_ARRAY_TASK_ID\"\n";
        sh.close();
        fs::permissions(out / "sweep.sbatch", fs::perms::owner_exec, fs::perm_options::add, ec);
        std::printf("sweep: %zu points in %s\n  submit:  sbatch --wait %s\n  collect: iommusim sweep collect %s\n"
                    "  (GNU parallel: parallel iommusim run --manifest %s --index {} ::: $(seq 0 %zu))\n",
                    points.size(), (dir / kManifest).c_str(), (dir / "sweep.sbatch").c_str(), dir.c_str(),
                    (dir / kManifest).c_str(), points.size() - 1);
        return 0;
    }

    // Local: up to `jobs` points at once, each `run --manifest M --index i`.
    const bool tty = isatty(STDERR_FILENO);
    const std::string manifest = (out / kManifest).string();
    std::map<pid_t, size_t> running;
    size_t next = 0, done = 0, failed = 0;
    int worst = 0;
    auto progress = [&] {
        if (tty) std::fprintf(stderr, "\r  sweep: %zu/%zu points done, %zu running, %zu failed   ", done, points.size(),
                              running.size(), failed);
    };
    {
        struct sigaction sa {};
        sa.sa_handler = on_sweep_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0; // no SA_RESTART: waitpid returns EINTR so the signal is forwarded at once
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
    }
    int forwarded = 0;
    while (done < points.size()) {
        if (g_sweep_signal && forwarded != g_sweep_signal) {
            forwarded = g_sweep_signal;
            for (const auto& [pid, point] : running) kill(pid, forwarded); // a terminal's ^C reached them already; kill(1) did not
            std::fprintf(stderr, "%siommusim: sweep interrupted by signal %d: %zu running point(s) write their results, "
                                 "%zu not started\n", tty ? "\n" : "", forwarded, running.size(), points.size() - next);
        }
        if (g_sweep_signal && running.empty()) break;
        while (!g_sweep_signal && next < points.size() && running.size() < std::max(1u, o.jobs)) {
            const pid_t pid = spawn_self({"run", "--manifest", manifest, "--index", std::to_string(next)});
            if (pid < 0) {
                std::cerr << "iommusim: cannot start sweep point " << next << "\n";
                return 1;
            }
            running[pid] = next++;
        }
        progress();
        int status = 0;
        const pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue; // a signal: forward it (top of the loop)
            break;
        }
        auto it = running.find(pid);
        if (it == running.end()) continue;
        const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        if (rc != 0) ++failed;
        worst = std::max(worst, rc);
        ++done;
        if (!tty) std::fprintf(stderr, "  sweep: point %zu done (exit %d), %zu/%zu\n", it->second, rc, done, points.size());
        running.erase(it);
    }
    if (tty) {
        progress();
        std::fprintf(stderr, "\n");
    }
    const int collected = collect(out); // points that did not run have an empty exit code in sweep.csv
    if (g_sweep_signal) return 128 + static_cast<int>(g_sweep_signal);
    return std::max(worst, collected);
}

} // namespace

bool manifest_point(const std::string& manifest, size_t index, std::string& file, std::vector<std::string>& sets,
                    std::string& out, std::string& err) {
    const json m = read_json(manifest);
    if (!m.is_object() || !m.contains("points") || !m.contains("platform_file")) {
        err = "not a sweep manifest (iommusim sweep --emit slurm writes one)";
        return false;
    }
    if (index >= m["points"].size()) {
        err = "--index " + std::to_string(index) + " is out of range: the manifest has " +
              std::to_string(m["points"].size()) + " points (0.." + std::to_string(m["points"].size() - 1) + ")";
        return false;
    }
    const json& p = m["points"][index];
    file = m["platform_file"].get<std::string>();
    sets = m["sets"].get<std::vector<std::string>>();
    for (const auto& s : p["sets"]) sets.push_back(s.get<std::string>());
    out = (fs::path(manifest).parent_path() / p["dir"].get<std::string>()).string();
    return true;
}

void add_sweep_command(CLI::App& app, int& rc) {
    auto o = std::make_shared<SweepOptions>();
    auto* cmd = app.add_subcommand("sweep", "run a platform over every combination of parameter values; DIR/sweep.csv");
    cmd->add_option("platform", o->file, "platform JSON file");
    cmd->add_option("--vary", o->vary, "PATH=V1,V2,... (repeatable: the cartesian product is run; JSON arrays are values too)")
        ->take_all();
    cmd->add_option("--stat", o->stats, "stat to collect: a counter/value path, or a histogram's path plus .count/.mean/.p50/.p90/.p99/.max")
        ->take_all();
    cmd->add_option("--set", o->sets, "fixed override for every point: PATH=VALUE")->take_all();
    cmd->add_option("--out", o->out, "output directory (default results/<platform name>-sweep/)");
    cmd->add_option("--jobs,-j", o->jobs, "points run in parallel (default 1)")->check(CLI::Range(1u, 1024u));
    cmd->add_option("--emit", o->emit, "write the manifest and a SLURM job-array script instead of running")
        ->check(CLI::IsMember({"slurm"}));
    auto* col = cmd->add_subcommand("collect", "merge the points' results of a sweep folder into DIR/sweep.csv");
    col->add_option("dir", o->collect_dir, "the sweep folder (holds manifest.json)")->required();
    cmd->callback([o, col, &rc] {
        if (*col) {
            rc = collect(o->collect_dir);
            return;
        }
        if (o->vary.empty()) {
            std::cerr << "iommusim: sweep needs at least one --vary PATH=V1,V2,...\n";
            rc = 2;
            return;
        }
        rc = sweep(*o);
    });
}

} // namespace iommusim::cli
