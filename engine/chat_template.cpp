#include "chat_template.h"

namespace quire {

const char* chat_role_name(ChatRole role) {
    switch (role) {
    case ChatRole::system: return "system";
    case ChatRole::user: return "user";
    case ChatRole::assistant: return "assistant";
    }
    return "user";
}

std::vector<PromptSegment> render_chat(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
    using K = PromptSegment::Kind;
    std::vector<PromptSegment> out;
    for (const auto& m : messages) {
        out.push_back({K::special, "<|im_start|>"});
        out.push_back({K::text, std::string(chat_role_name(m.role)) + "\n" + m.content});
        out.push_back({K::special, "<|im_end|>"});
        out.push_back({K::text, "\n"});
    }
    if (options.add_generation_prompt) {
        out.push_back({K::special, "<|im_start|>"});
        out.push_back({K::text, "assistant\n"});
        if (!options.thinking) {
            out.push_back({K::marker, "<think>"});
            out.push_back({K::text, "\n\n"});
            out.push_back({K::marker, "</think>"});
            out.push_back({K::text, "\n\n"});
        }
    }
    return out;
}

std::string segments_text(const std::vector<PromptSegment>& segments) {
    std::string s;
    for (const auto& seg : segments) s += seg.text;
    return s;
}

std::string render_chat_text(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
    return segments_text(render_chat(messages, options));
}

}  // namespace quire
